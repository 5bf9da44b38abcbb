//! The homomorphic work of encrypted alerts, run on blocking threads off
//! the event loop: a holder's answer to an alert's probe (`AlertJob`), the
//! issuer's decryption of an answer page (`AnswerJob`) and its encryption
//! of a probe form a holder fetched (`FetchJob`).

use super::answered::Undo;
use std::sync::Arc;
use vigil_matcher::encrypted::{
    per_group, respond, respond_row_any, AnyAnswer, EncryptedProbe, ProberKey, RowProbe, RunLayout, Thresholds,
    PADDING, POLY, ROW_PADDING,
};
use vigil_matcher::Gallery;
use vigil_protocol::{AlertId, Handle, OrgId, ProbeForm, Refusal, Response};

/// The probe a holder's job answers: the alert's row form or a split row
/// form, or the column form fetched from the issuer for a large gallery.
#[derive(Debug, Clone, PartialEq)]
pub enum JobProbe {
    Row(Arc<RowProbe>),
    Column(Arc<EncryptedProbe>),
}

/// Homomorphic work for one alert at a holder: run on a blocking thread.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertJob {
    pub alert: AlertId,
    pub issuer: OrgId,
    pub probe: JobProbe,
    pub gallery: Gallery,
    /// Record id of each gallery row.
    pub records: Vec<u64>,
    /// The integer thresholds of the policy's bands, rising (per row where
    /// they depend on the fingers a record shares with the probe);
    /// row-form answers carry one answer per band when there are several
    /// (column form: the first only).
    pub thresholds: Thresholds,
    pub seed: [u8; 32],
    /// Row form: records per answer page (a whole number of groups).
    /// Column form: positions per page (a whole number of blocks).
    pub page_records: usize,
    /// Takes the records' answered mark back if the job fails.
    pub(crate) undo: Undo,
    /// Standing matching (one new record against an alert answered
    /// before): its pages are audited in aggregate.
    pub standing: bool,
}

/// One page of a holder's answer, ready to send and to store.
#[derive(Debug)]
pub struct AnswerPage {
    pub id: Handle,
    pub body: Vec<u8>,
    /// Record id of each position (0: padding).
    pub records: Vec<u64>,
}

fn derive(seed: &[u8; 32], what: &[u8], page: usize) -> [u8; 32] {
    let mut b = seed.to_vec();
    b.extend_from_slice(what);
    b.extend_from_slice(&(page as u64).to_le_bytes());
    vigil_crypto::sha256(&b)
}

impl AlertJob {
    /// Answers the probe page by page, each with its own fresh shuffle,
    /// masks and re-randomisation. Blocking: never call it on the runtime.
    pub fn run(&self) -> Result<Vec<AnswerPage>, String> {
        let probe = match &self.probe {
            JobProbe::Row(p) => p.clone(),
            JobProbe::Column(p) => return self.run_column(p),
        };
        let d = self.gallery.dim();
        let page = self.page_records.max(per_group(probe.stride()));
        let mut pages = Vec::new();
        for (n, start) in (0..self.records.len()).step_by(page).enumerate() {
            let end = (start + page).min(self.records.len());
            let rows = Gallery::new(d, (start..end).flat_map(|i| self.gallery.row(i).iter().copied()).collect());
            let thresholds = self.thresholds.rows(start, end);
            let (body, order) = respond_row_any(&probe, &rows, &thresholds, derive(&self.seed, b"page", n))
                .map_err(|e| e.to_string())?;
            let id = Handle(derive(&self.seed, b"id", n)[..16].try_into().expect("16 bytes"));
            let records =
                order.iter().map(|r| if *r == ROW_PADDING { 0 } else { self.records[start + *r as usize] }).collect();
            pages.push(AnswerPage { id, body, records });
        }
        Ok(pages)
    }

    /// Column form: one pass over the whole gallery (run layout, fresh
    /// shuffle and decoys), then pages of whole blocks.
    fn run_column(&self, probe: &EncryptedProbe) -> Result<Vec<AnswerPage>, String> {
        let layout = RunLayout::new(&self.gallery);
        let (answer, order) = respond(probe, &layout, self.thresholds.band(0), self.seed).map_err(|e| e.to_string())?;
        let blocks = (self.page_records / POLY).max(1);
        let per_page = blocks * POLY;
        Ok(answer
            .into_pages(blocks)
            .into_iter()
            .enumerate()
            .map(|(n, page)| {
                let records = order[n * per_page..n * per_page + page.count]
                    .iter()
                    .map(|r| if *r == PADDING { 0 } else { self.records[*r as usize] })
                    .collect();
                let id = Handle(derive(&self.seed, b"id", n)[..16].try_into().expect("16 bytes"));
                AnswerPage { id, body: page.to_bytes(), records }
            })
            .collect())
    }
}

/// Decryption of one answer page at the issuer: run on a blocking thread.
#[derive(Debug)]
pub struct AnswerJob {
    pub from: OrgId,
    pub alert: AlertId,
    pub answer_id: Handle,
    pub key: Arc<ProberKey>,
    pub answer: AnyAnswer,
}

/// A decrypted answer page (`AnyAnswer::positives`).
pub use vigil_matcher::encrypted::Decisions;

impl AnswerJob {
    pub fn run(&self) -> Result<Decisions, String> {
        self.answer.positives(&self.key).map_err(|e| e.to_string())
    }
}

/// One fetched form of an alert's probe, encrypted by the first job that
/// needs it and then given as is to every holder asking for that form (the
/// alert's own probe is likewise one ciphertext for all). `None` inside:
/// the encryption failed.
pub(crate) type FetchedForm = Arc<std::sync::OnceLock<Option<Vec<u8>>>>;

/// Encryption of an alert's probe in column form, or split into `chunks`
/// row-form chunks, at the issuer, for a holder that asked: run on a
/// blocking thread.
#[derive(Debug)]
pub struct FetchJob {
    pub alert: AlertId,
    pub from: OrgId,
    pub key: Arc<ProberKey>,
    pub vector: Vec<i8>,
    /// `None`: the column form.
    pub chunks: Option<usize>,
    pub(crate) form: FetchedForm,
}

impl FetchJob {
    /// The response to send: the probe, encrypted on the first fetch of
    /// this form of this alert.
    pub fn run(&self) -> Response {
        let bytes = self.form.get_or_init(|| {
            match self.chunks {
                None => self.key.encrypt(&self.vector).map(|p| p.to_bytes()),
                Some(n) => self.key.encrypt_row_split(&self.vector, n).map(|p| p.to_bytes()),
            }
            .ok()
        });
        match bytes {
            Some(probe) => Response::Probe(ProbeForm { alert: self.alert, probe: probe.clone() }),
            None => Response::Refused(Refusal::Unsupported),
        }
    }
}
