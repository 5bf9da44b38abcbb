//! The operator console in a real browser (headless Chromium over
//! WebDriver) against two real `vigil serve` processes: sign-in and its
//! refusals, enrolment at a border post, an alert from a shelter, the hit
//! and its follow-up clock, a disclosure request, two approvers at the
//! border post (one alone cannot), the contact at the shelter; a missing
//! CSRF token, a closed session, an expired one, a session older than its
//! operator's password, a foreign `Host` and a wrong role are refused; markup in a
//! case reference is shown as text; every page checked passes a WCAG AA
//! contrast and labelling audit, and Tab walks the enrolment form from the
//! skip link on. Skipped where chromedriver is absent,
//! unless `VIGIL_REQUIRE_BROWSER` is set (CI sets it).

mod common;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use vigil_matcher::synth::Population;

const PASSWORD: &str = "long enough password 1";
const MARKUP: &str = "<b>EG-7</b><script>alert(1)</script>";

fn chromedriver() -> Option<PathBuf> {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"].iter().map(PathBuf::from).find(|p| p.exists())
}

/// chromedriver on a free port; killed when dropped.
struct Driver(std::process::Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_driver(path: &Path) -> Driver {
    let port = free_port();
    let child = std::process::Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver(child, port)
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ];
    caps.insert("goog:chromeOptions".into(), serde_json::json!({ "args": args, "binary": "/usr/bin/chromium" }));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.1))
        .await
        .expect("a browser session")
}

fn add_operator(dir: &str, name: &str, role: &str, language: &str) {
    let out = vigil()
        .args(["operator", "add", "--data", dir, name, "--role", role, "--language", language])
        .env("VIGIL_PASSPHRASE", PASSPHRASE)
        .env("VIGIL_OPERATOR_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(out.status.success(), "operator add: {}", String::from_utf8_lossy(&out.stderr));
}

async fn text(c: &Client, css: &str) -> String {
    let wait = c.wait().at_most(Duration::from_secs(20));
    match wait.for_element(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap(),
        Err(e) => {
            let page = c.source().await.unwrap_or_default();
            panic!("{css} not found ({e}) at {:?} in:\n{page}", c.current_url().await.map(|u| u.to_string()))
        }
    }
}

async fn sign_in(c: &Client, base: &str, name: &str, password: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Id("name")).await.unwrap().send_keys(name).await.unwrap();
    c.find(Locator::Id("password")).await.unwrap().send_keys(password).await.unwrap();
    submit(c, Locator::Id("sign-in")).await;
}

async fn sign_out(c: &Client) {
    submit(c, Locator::Css("form.who button")).await;
    c.wait().for_element(Locator::Id("sign-in")).await.unwrap();
}

/// Clicks the button at `at` and waits until its page is gone: a form's
/// answer is a new page, and a `goto` before it arrives would cancel it.
async fn submit(c: &Client, at: Locator<'_>) {
    let button = c.find(at).await.unwrap();
    button.click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while button.is_enabled().await.is_ok() {
        assert!(Instant::now() < deadline, "the form's answer never came");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fill(c: &Client, id: &str, value: &str) {
    let e = c.find(Locator::Id(id)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

/// Reloads `url` until `css` shows text containing `want`.
async fn until_shows(c: &Client, url: &str, css: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        c.goto(url).await.unwrap();
        if let Ok(e) = c.find(Locator::Css(css)).await {
            let t = e.text().await.unwrap();
            if t.contains(want) {
                return t;
            }
        }
        assert!(Instant::now() < deadline, "{url} never showed {want:?} in {css}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What a page breaks of WCAG 2.1 AA that a script can see: text whose
/// contrast with its background is under 4.5:1 (3:1 for large text), and
/// form controls without a label.
const AUDIT_PAGE: &str = r#"
const bad = [];
const lum = c => {
  const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null;
  const p = m[1].split(',').map(parseFloat); if (p.length === 4 && p[3] === 0) return null;
  const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(p[0]) + 0.7152 * f(p[1]) + 0.0722 * f(p[2]);
};
const back = e => { for (; e; e = e.parentElement) { const l = lum(getComputedStyle(e).backgroundColor); if (l !== null) return l; } return 1; };
for (const e of document.querySelectorAll('body *')) {
  if (![...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
  const s = getComputedStyle(e);
  if (s.display === 'none' || s.visibility === 'hidden') continue;
  const fg = lum(s.color), bg = back(e);
  const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  const size = parseFloat(s.fontSize), large = size >= 24 || (size >= 18.66 && parseInt(s.fontWeight) >= 700);
  if (ratio < (large ? 3 : 4.5)) bad.push(`${e.tagName} "${e.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}:1`);
}
for (const e of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
  if (!((e.id && document.querySelector(`label[for="${e.id}"]`)) || e.getAttribute('aria-label') || e.closest('label')))
    bad.push(`unlabelled ${e.tagName} ${e.name}`);
}
return bad;
"#;

/// Checks the page against `AUDIT_PAGE`, then keeps a screenshot of it.
async fn check_page(c: &Client, name: &str) {
    let found = c.execute(AUDIT_PAGE, vec![]).await.unwrap();
    assert_eq!(found, serde_json::json!([]), "{name}: contrast or labels");
    screenshot(c, name).await;
}

/// Presses Tab from the top of the page until `id` has the focus; the
/// first stop must be the skip link. Returns the ids passed on the way.
async fn tab_to(c: &Client, id: &str) -> Vec<String> {
    use fantoccini::actions::{InputSource, KeyAction, KeyActions};
    c.execute("document.activeElement.blur(); window.scrollTo(0, 0)", vec![]).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..60 {
        let tab = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: fantoccini::key::Key::Tab.into() })
            .then(KeyAction::Up { value: fantoccini::key::Key::Tab.into() });
        c.perform_actions(tab).await.unwrap();
        let js = "const e = document.activeElement; return e.id || e.className || e.tagName";
        let at = c.execute(js, vec![]).await.unwrap().as_str().unwrap_or_default().to_string();
        if seen.is_empty() {
            assert_eq!(at, "skip", "the first Tab reaches the skip link");
        }
        seen.push(at.clone());
        if at == id {
            return seen;
        }
    }
    panic!("Tab never reached #{id}: {seen:?}");
}

async fn screenshot(c: &Client, name: &str) {
    if let Ok(dir) = std::env::var("VIGIL_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(Path::new(&dir).join(name), c.screenshot().await.unwrap()).unwrap();
    }
}

fn status_of(r: Result<ureq::Response, ureq::Error>) -> u16 {
    match r {
        Ok(resp) => resp.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    }
}

/// The status of a POST with `cookie` (`name=value`) and the form body `body`.
fn post_status(url: &str, cookie: &str, body: &str) -> u16 {
    status_of(
        ureq::post(url)
            .set("Cookie", cookie)
            .set("Content-Type", "application/x-www-form-urlencoded")
            .send_string(body),
    )
}

/// The status of a GET with `cookie` (`name=value`).
fn get_status(url: &str, cookie: &str) -> u16 {
    status_of(ureq::AgentBuilder::new().redirects(0).build().get(url).set("Cookie", cookie).call())
}

/// The body of a GET with `cookie`, which must succeed.
fn get_body(url: &str, cookie: &str) -> String {
    ureq::get(url).set("Cookie", cookie).call().unwrap_or_else(|e| panic!("{url}: {e}")).into_string().unwrap()
}

/// The browser's session cookie for the console it is on, as `name=value`
/// (its name carries the node's org id).
async fn session_cookie(c: &Client) -> String {
    let all = c.get_all_cookies().await.unwrap();
    let cookie = all.iter().find(|k| k.name().starts_with("vigil_session_")).expect("a session cookie");
    format!("{}={}", cookie.name(), cookie.value())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_work_a_case_from_alert_to_disclosed_contact_in_a_real_browser() {
    let Some(driver_path) = chromedriver() else {
        assert!(std::env::var_os("VIGIL_REQUIRE_BROWSER").is_none(), "chromedriver is required here");
        eprintln!("skipped: no chromedriver (install chromium and chromium-driver)");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let dirs = federation(root.path(), &[("Shelter North", "ngo"), ("Eastgate Border Post", "border")]);
    let (ngo, border) = (&dirs[0], &dirs[1]);
    // Operators are added on the stopped directories (the first admin's way in).
    add_operator(ngo, "amira", "case_worker", "en");
    add_operator(ngo, "lucie", "auditor", "fr");
    add_operator(border, "kofi", "case_worker", "en");
    add_operator(border, "desk", "approver", "en");
    add_operator(border, "chief", "approver", "en");
    let pop = Population::new(21, "vigil-synth-128", 10);
    let file = |name: &str, person: usize, sample: u64| {
        let p = root.path().join(name);
        write_template(&p, &pop.sample_file(person, sample));
        p.to_str().unwrap().to_string()
    };
    let (held, probe) = (file("held.json", 4, 1), file("probe.json", 4, 0));
    // A capture SDK's PAD attestation over the held template, by a key no
    // policy of this federation lists.
    let pad = {
        let body = vigil_protocol::pad::PadBody {
            key: "field-cam".into(),
            sdk: "FieldPAD 3.1".into(),
            decision: vigil_protocol::pad::PadDecision::BonaFide,
            score: None,
            captured_at_ms: vigil_node::now_ms(),
            sample: pop.sample_file(4, 1).sample_digest(),
        };
        let signed = vigil_crypto::sign_pad(&vigil_crypto::Identity::generate(), body).unwrap();
        let p = root.path().join("held.pad.json");
        std::fs::write(&p, serde_json::to_string(&signed).unwrap()).unwrap();
        p.to_str().unwrap().to_string()
    };
    // A hotline of its own whose sessions end after 10 s unused.
    std::fs::create_dir(root.path().join("alone")).unwrap();
    let hotline = federation(&root.path().join("alone"), &[("Hotline", "ngo")]).remove(0);
    let toml = Path::new(&hotline).join("vigil.toml");
    let config = std::fs::read_to_string(&toml).unwrap();
    let short = config.replace("session_idle = \"30m\"", "session_idle = \"10s\"");
    assert_ne!(config, short, "the hotline's config sets session_idle");
    std::fs::write(&toml, short).unwrap();
    add_operator(&hotline, "ines", "case_worker", "en");
    let mut daemons = [serve(Path::new(ngo)), serve(Path::new(border)), serve(Path::new(&hotline))];
    let base = |dir: &str| vigil_node::datadir::api_access(Path::new(dir)).unwrap().0;
    let (ngo_url, border_url) = (base(ngo), base(border));

    let driver = start_driver(&driver_path);
    let (shelter, post, desk) = (browser(&driver).await, browser(&driver).await, browser(&driver).await);
    let hotline_url = base(&hotline);
    sign_in(&desk, &hotline_url, "ines", PASSWORD).await;
    let idle_from = Instant::now();
    let idle_cookie = session_cookie(&desk).await;

    // Nothing without signing in; a wrong password is refused.
    post.goto(&format!("{border_url}/records")).await.unwrap();
    assert!(post.current_url().await.unwrap().path().ends_with("/login"), "pages send strangers to the login");
    sign_in(&post, &border_url, "kofi", "not the password at all").await;
    assert!(text(&post, "#error").await.contains("wrong operator name or password"));
    sign_in(&post, &border_url, "nobody", PASSWORD).await;
    assert!(text(&post, "#error").await.contains("wrong operator name or password"), "unknown names answered alike");
    check_page(&post, "login.png").await;
    // The audit sees a grey heading and a bare input (its own control).
    let spoil = "document.querySelector('h1').style.color = '#bbbbbb'; \
                 document.querySelector('main').append(document.createElement('input'))";
    post.execute(spoil, vec![]).await.unwrap();
    let found = post.execute(AUDIT_PAGE, vec![]).await.unwrap();
    let found: Vec<String> = serde_json::from_value(found).unwrap();
    assert!(found.len() == 2 && found[0].starts_with("H1") && found[1].starts_with("unlabelled INPUT"), "{found:?}");

    // The border post enrols a found person; markup in the case reference stays text.
    sign_in(&post, &border_url, "kofi", PASSWORD).await;
    assert_eq!(text(&post, "#operator").await, "kofi");
    post.goto(&format!("{border_url}/records")).await.unwrap();
    post.find(Locator::Id("template")).await.unwrap().send_keys(&held).await.unwrap();
    fill(&post, "case_ref", MARKUP).await;
    fill(&post, "consent", "signed intake form").await;
    fill(&post, "retain_until", "2031-01-01").await;
    submit(&post, Locator::Id("enrol-button")).await;
    assert!(text(&post, "#flash").await.contains("Enrolled as record"));
    assert_eq!(text(&post, "td.case-ref").await, MARKUP, "the case reference is shown as typed");
    assert!(post.find_all(Locator::Css("td.case-ref b, td.case-ref script")).await.unwrap().is_empty());
    // A refused enrolment says why, as the CLI would.
    post.find(Locator::Id("template")).await.unwrap().send_keys(&held).await.unwrap();
    fill(&post, "case_ref", "EG-8").await;
    fill(&post, "consent", "signed intake form").await;
    fill(&post, "retain_until", "next year").await;
    submit(&post, Locator::Id("enrol-button")).await;
    assert!(text(&post, "#error").await.contains("invalid date"), "the date's precise error");
    // The attestation file goes with the template: checked by the node.
    post.find(Locator::Id("template")).await.unwrap().send_keys(&held).await.unwrap();
    post.find(Locator::Id("pad")).await.unwrap().send_keys(&pad).await.unwrap();
    fill(&post, "case_ref", "EG-9").await;
    fill(&post, "consent", "signed intake form").await;
    fill(&post, "retain_until", "2031-01-01").await;
    submit(&post, Locator::Id("enrol-button")).await;
    let refused = text(&post, "#error").await;
    assert!(refused.contains("capture key \"field-cam\", which the federation's policy does not list"), "{refused}");
    check_page(&post, "records.png").await;
    let path = tab_to(&post, "enrol-button").await;
    assert!(
        ["template", "case_ref", "consent", "retain_until"].iter().all(|f| path.iter().any(|p| p == f)),
        "{path:?}"
    );

    // A case worker may not decide disclosures; a form without the CSRF token is refused.
    let cookie = session_cookie(&post).await;
    let fake = "00".repeat(16);
    assert_eq!(post_status(&format!("{border_url}/disclosures/{fake}/approve"), &cookie, "contact=x"), 403);
    assert_eq!(post_status(&format!("{border_url}/records/1/erase"), &cookie, "reason=x&confirm=yes"), 403);
    let token_page = post.source().await.unwrap();
    assert!(token_page.contains("name=\"csrf\""), "forms carry the token");
    sign_out(&post).await;
    // After signing out, the old cookie opens nothing.
    assert_eq!(post_status(&format!("{border_url}/records/1/erase"), &cookie, "reason=x&confirm=yes"), 401);
    assert_eq!(get_status(&format!("{border_url}/records"), &cookie), 303, "back to the login");
    // A new password ends the sessions opened with the old one.
    sign_in(&post, &border_url, "kofi", PASSWORD).await;
    let cookie = session_cookie(&post).await;
    assert_eq!(get_status(&format!("{border_url}/records"), &cookie), 200);
    let token = vigil_node::datadir::api_access(Path::new(border)).unwrap().1;
    let reset = ureq::post(&format!("{border_url}/v1/operators/kofi/password"))
        .set("Authorization", &format!("Bearer {token}"))
        .send_json(serde_json::json!({ "password": "another long password" }));
    assert_eq!(status_of(reset), 200);
    assert_eq!(get_status(&format!("{border_url}/records"), &cookie), 303, "the old session ended");
    // A page of another name that resolves here (DNS rebinding) gets nothing.
    let rebound = ureq::get(&format!("{border_url}/login")).set("Host", "vigil.evil.example").call();
    assert_eq!(status_of(rebound), 421);

    // The shelter publishes an alert; the hit arrives with its follow-up clock.
    sign_in(&shelter, &ngo_url, "amira", PASSWORD).await;
    shelter.goto(&format!("{ngo_url}/cases")).await.unwrap();
    shelter.find(Locator::Id("template")).await.unwrap().send_keys(&probe).await.unwrap();
    fill(&shelter, "case_ref", "SN-2026-114").await;
    submit(&shelter, Locator::Id("publish-button")).await;
    assert!(text(&shelter, "#flash").await.contains("Alert published"));
    let row = until_shows(&shelter, &format!("{ngo_url}/hits"), "#hits tbody tr", "Eastgate Border Post").await;
    assert!(row.contains("SN-2026-114") && row.contains("due in 4"), "hit row: {row}");
    let cases = until_shows(&shelter, &format!("{ngo_url}/cases"), "#alerts tbody tr", "1 hit").await;
    assert!(cases.contains("due in"), "the case shows its clock: {cases}");
    check_page(&shelter, "cases.png").await;
    // Exports: the hits as CSV, the alert as CAP 1.2 with only the ticked facts.
    let cookie = session_cookie(&shelter).await;
    let csv = get_body(&format!("{ngo_url}/hits/export.csv"), &cookie);
    assert!(csv.starts_with("hit,when,case_ref,holder") && csv.contains("SN-2026-114,Eastgate Border Post"), "{csv}");
    let alert = shelter.find(Locator::Css("#alerts tbody a")).await.unwrap().attr("href").await.unwrap().unwrap();
    let cap = get_body(&format!("{ngo_url}{alert}/cap?exercise=on"), &cookie);
    let doc = roxmltree::Document::parse(&cap).expect("CAP is XML");
    let field =
        |name: &str| doc.descendants().find(|n| n.has_tag_name(name)).and_then(|n| n.text()).map(str::to_string);
    assert_eq!(field("status").as_deref(), Some("Exercise"));
    assert_eq!(field("senderName").as_deref(), Some("Shelter North"));
    assert!(!cap.contains("SN-2026-114"), "the case reference stays out unless ticked: {cap}");
    let cap = get_body(&format!("{ngo_url}{alert}/cap?case_ref=on"), &cookie);
    assert!(cap.contains("<value>SN-2026-114</value>") && cap.contains("<status>Actual</status>"), "{cap}");
    shelter.goto(&format!("{ngo_url}{alert}")).await.unwrap();
    let member = text(&shelter, "#members tbody tr").await;
    assert!(
        member.contains("Eastgate Border Post") && member.contains("hit") && member.contains("connected"),
        "{member}"
    );
    shelter.goto(&format!("{ngo_url}/hits")).await.unwrap();
    shelter.find(Locator::Css("#hits input[name=reason]")).await.unwrap().send_keys("family asks").await.unwrap();
    submit(&shelter, Locator::Css("#hits button")).await;
    assert!(text(&shelter, "#flash").await.contains("Disclosure requested"));
    check_page(&shelter, "hits.png").await;

    // At the border post, a first approver approves: nothing is sent yet,
    // and the same person cannot confirm.
    sign_in(&post, &border_url, "desk", PASSWORD).await;
    let card = until_shows(&post, &format!("{border_url}/disclosures"), "article.card", "Shelter North").await;
    assert!(card.contains("family asks") && card.contains(MARKUP), "request with the matched record: {card}");
    fill(&post, &post_contact_id(&post).await, "Sgt. R. Moreau, +00 555 0101").await;
    submit(&post, Locator::Css("article.card button.approve")).await;
    assert!(text(&post, "#flash").await.contains("Decision recorded"));
    assert!(text(&post, "p.pending-second").await.contains("desk"));
    submit(&post, Locator::Css("article.card button.approve")).await;
    assert!(text(&post, "#error").await.contains("another person"), "one operator alone cannot approve");
    check_page(&post, "disclosures.png").await;
    sign_out(&post).await;
    shelter.goto(&format!("{ngo_url}/disclosures")).await.unwrap();
    assert!(text(&shelter, "#requested td.status").await.contains("pending"), "nothing arrived on one approval");

    // A second approver confirms; the contact reaches the shelter.
    sign_in(&post, &border_url, "chief", PASSWORD).await;
    post.goto(&format!("{border_url}/disclosures")).await.unwrap();
    submit(&post, Locator::Css("article.card button.approve")).await;
    assert!(text(&post, "#flash").await.contains("Decision recorded"));
    let contact = until_shows(&shelter, &format!("{ngo_url}/disclosures"), "#requested td.contact", "Moreau").await;
    assert_eq!(contact, "Sgt. R. Moreau, +00 555 0101");
    let hit = until_shows(&shelter, &format!("{ngo_url}/hits"), "#hits tbody tr", "approved").await;
    assert!(hit.contains("done"), "the follow-up clock stops: {hit}");

    // A search bound to the case: the legal basis is required, what was
    // typed stays; the border post answers with its match.
    shelter.goto(&format!("{ngo_url}/identify")).await.unwrap();
    shelter.find(Locator::Id("template")).await.unwrap().send_keys(&probe).await.unwrap();
    fill(&shelter, "purpose", "second sighting <i>bus station</i>").await;
    fill(&shelter, "legal_basis", "   ").await;
    submit(&shelter, Locator::Id("identify-button")).await;
    assert!(text(&shelter, "#error").await.contains("legal basis is required"));
    let kept = shelter.find(Locator::Id("purpose")).await.unwrap().prop("value").await.unwrap();
    assert_eq!(kept.as_deref(), Some("second sighting <i>bus station</i>"));
    shelter.find(Locator::Id("template")).await.unwrap().send_keys(&probe).await.unwrap();
    fill(&shelter, "legal_basis", "GDPR art. 6(1)(d)").await;
    submit(&shelter, Locator::Id("identify-button")).await;
    let row = text(&shelter, "#outcomes-table tbody tr.hit").await;
    assert!(row.contains("Eastgate Border Post") && row.contains("1 match"), "outcome: {row}");
    assert!(text(&shelter, "#outcomes").await.contains("SN-2026-114"), "the search names its case");
    let rows = until_shows(&shelter, &format!("{ngo_url}/hits"), "#hits tbody", "identify").await;
    let found = rows.lines().find(|l| l.contains("identify")).unwrap_or_default().to_string();
    assert!(found.contains("SN-2026-114"), "the search's hit names its case: {rows}");
    check_page(&shelter, "identify.png").await;

    // The border post's audit names each operator; the auditor at the shelter reads French.
    post.goto(&format!("{border_url}/audit?verify=1&operator=chief")).await.unwrap();
    assert!(text(&post, "#verify-result").await.contains("verifies"));
    let audit = text(&post, "#audit tbody").await;
    assert!(audit.contains("chief") && audit.contains("disclosure_decided"), "{audit}");
    post.goto(&format!("{border_url}/audit?operator=desk&kind=disclosure")).await.unwrap();
    assert!(text(&post, "#audit tbody").await.contains("disclosure_approval_pending"));
    check_page(&post, "audit.png").await;
    // The login under an unknown name left its trace too.
    let export = root.path().join("border-audit.json");
    ok(&["audit", "export", "--data", border, "--out", export.to_str().unwrap()]);
    let exported = std::fs::read_to_string(&export).unwrap();
    assert!(exported.contains("operator_login_unknown") && exported.contains("\"nobody\""), "unknown name audited");
    sign_out(&shelter).await;
    sign_in(&shelter, &ngo_url, "lucie", PASSWORD).await;
    assert!(text(&shelter, "nav").await.contains("Dossiers"), "French for a French-speaking operator");
    shelter.goto(&format!("{ngo_url}/audit?operator=amira&kind=query")).await.unwrap();
    let audit = text(&shelter, "#audit tbody").await;
    assert!(audit.contains("query_for_case") && audit.contains("query_sent"), "the search's case is audited: {audit}");
    shelter.goto(&format!("{ngo_url}/records")).await.unwrap();
    assert!(shelter.find_all(Locator::Id("enrol-button")).await.unwrap().is_empty(), "an auditor enrols nobody");
    // The health page: plots drawn from the node's sampled metrics, in her language.
    shelter.goto(&format!("{ngo_url}/health")).await.unwrap();
    assert!(text(&shelter, "#health-intro").await.contains("échantillons"));
    for plot in ["alerts", "hits", "outbox", "peers", "commit", "lag"] {
        let js = format!("return document.getElementById('plot-{plot}').naturalWidth");
        let width = shelter.execute(&js, vec![]).await.unwrap();
        assert_eq!(width.as_u64(), Some(640), "plot {plot} loads");
    }
    check_page(&shelter, "health.png").await;
    let svg = get_body(&format!("{ngo_url}/health/alerts.svg"), &session_cookie(&shelter).await);
    let doc = roxmltree::Document::parse(&svg).expect("an SVG document");
    assert!(doc.descendants().any(|n| n.has_tag_name("circle")), "at least one sample is drawn");
    assert!(svg.contains("Alertes détenues"), "the plot speaks French too");

    // Five wrong passwords in a row lock an operator out, the right one included.
    for _ in 0..5 {
        sign_in(&shelter, &ngo_url, "amira", "wrong wrong wrong wrong").await;
    }
    sign_in(&shelter, &ngo_url, "amira", PASSWORD).await;
    assert!(text(&shelter, "#error").await.contains("locked out"), "locked after five failures");

    // The border post goes down: the shelter's case says since when it is not reachable.
    let _ = daemons[1].0.kill();
    let _ = daemons[1].0.wait();
    shelter.goto(&format!("{ngo_url}/login")).await.unwrap();
    sign_in(&shelter, &ngo_url, "lucie", PASSWORD).await;
    let gone = until_shows(&shelter, &format!("{ngo_url}{alert}"), "#members td.reach", "depuis").await;
    assert!(gone.starts_with("injoignable depuis"), "{gone}");

    // The hotline's session, unused for 10 s, has expired: pages send the
    // browser to the login, forms are refused.
    tokio::time::sleep(Duration::from_secs(11).saturating_sub(idle_from.elapsed())).await;
    desk.goto(&format!("{hotline_url}/cases")).await.unwrap();
    assert!(desk.current_url().await.unwrap().path().ends_with("/login"), "an expired session opens nothing");
    assert_eq!(post_status(&format!("{hotline_url}/cases/{}/withdraw", "00".repeat(32)), &idle_cookie, "csrf=x"), 401);

    shelter.close().await.unwrap();
    post.close().await.unwrap();
    desk.close().await.unwrap();
}

/// The id of the first disclosure card's contact field.
async fn post_contact_id(c: &Client) -> String {
    c.find(Locator::Css("article.card input[name=contact]")).await.unwrap().attr("id").await.unwrap().unwrap()
}
