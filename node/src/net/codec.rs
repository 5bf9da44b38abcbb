//! Request-response framing for `/vigil/req/1`: a 4-byte big-endian length
//! then that many bytes (an encoded `Request` or `Response`). A request
//! frame over the configured limit is not read: it surfaces as
//! `Frame::Oversized` so the runtime can penalise the sender (libp2p does
//! not report inbound read errors). The engine decodes the bytes so that
//! every decoding error is audited and penalised too.

#[cfg(feature = "drill")]
use super::Tap;
use async_trait::async_trait;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use std::io;

pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new("/vigil/req/1");
/// Encrypted identification queries (large frames, their own limits).
pub(crate) const IDENTIFY_PROTOCOL: StreamProtocol = StreamProtocol::new("/vigil/identify/1");

/// Marker in error messages for a frame over the limit.
pub(crate) const OVERSIZED: &str = "oversized frame";

/// An inbound or outbound request frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    Data(Vec<u8>),
    /// A peer announced a frame of this many bytes, over our limit; its
    /// body was not read.
    Oversized(u64),
}

#[derive(Clone)]
pub(crate) struct FrameCodec {
    max_request: usize,
    max_response: usize,
    #[cfg(feature = "drill")]
    tap: Option<Tap>,
}

impl std::fmt::Debug for FrameCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FrameCodec(requests {}, responses {})", self.max_request, self.max_response)
    }
}

impl FrameCodec {
    pub(crate) fn new(max_request: usize, max_response: usize) -> Self {
        Self {
            max_request,
            max_response,
            #[cfg(feature = "drill")]
            tap: None,
        }
    }

    /// The same codec, showing every frame it writes to `tap`.
    #[cfg(feature = "drill")]
    pub(crate) fn tapped(self, tap: Option<Tap>) -> Self {
        Self { tap, ..self }
    }

    async fn read<T: AsyncRead + Unpin + Send>(&self, io: &mut T, max: usize) -> io::Result<Frame> {
        let mut len = [0u8; 4];
        io.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        if len > max {
            return Ok(Frame::Oversized(len as u64));
        }
        let mut buf = vec![0u8; len];
        io.read_exact(&mut buf).await?;
        Ok(Frame::Data(buf))
    }

    async fn write<T: AsyncWrite + Unpin + Send>(&self, io: &mut T, bytes: Vec<u8>, max: usize) -> io::Result<()> {
        if bytes.len() > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to send a {} byte frame (limit {max})", bytes.len()),
            ));
        }
        #[cfg(feature = "drill")]
        if let Some(tap) = &self.tap {
            tap("req", &bytes);
        }
        io.write_all(&(bytes.len() as u32).to_be_bytes()).await?;
        io.write_all(&bytes).await?;
        io.close().await
    }
}

#[async_trait]
impl libp2p::request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Frame;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read(io, self.max_request).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        match self.read(io, self.max_response).await? {
            Frame::Data(d) => Ok(d),
            Frame::Oversized(len) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{OVERSIZED}: {len} bytes, limit {}", self.max_response),
            )),
        }
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Frame) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match req {
            Frame::Data(d) => self.write(io, d, self.max_request).await,
            Frame::Oversized(_) => Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot send a placeholder frame")),
        }
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, res: Vec<u8>) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write(io, res, self.max_response).await
    }
}
