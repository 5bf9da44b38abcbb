//! Request-response framing for `/vigil/req/1`: a 4-byte big-endian length
//! then that many bytes (an encoded `Request` or `Response`). Frames over
//! the configured limit are refused before they are read; the engine decodes
//! the bytes so that every decoding error is audited and penalised.

use super::Tap;
use async_trait::async_trait;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use std::io;

pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/vigil/req/1");

/// Marker in the io::Error message for a frame over the limit.
pub const OVERSIZED: &str = "oversized frame";

#[derive(Clone)]
pub struct FrameCodec {
    max: usize,
    tap: Option<Tap>,
}

impl std::fmt::Debug for FrameCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FrameCodec(max {})", self.max)
    }
}

impl FrameCodec {
    pub fn new(max: usize, tap: Option<Tap>) -> Self {
        Self { max, tap }
    }

    async fn read<T: AsyncRead + Unpin + Send>(&self, io: &mut T) -> io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        io.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        if len > self.max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{OVERSIZED}: {len} bytes, limit {}", self.max),
            ));
        }
        let mut buf = vec![0u8; len];
        io.read_exact(&mut buf).await?;
        Ok(buf)
    }

    async fn write<T: AsyncWrite + Unpin + Send>(&self, io: &mut T, bytes: Vec<u8>) -> io::Result<()> {
        if bytes.len() > self.max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to send a {} byte frame (limit {})", bytes.len(), self.max),
            ));
        }
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
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read(io).await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Vec<u8>) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write(io, req).await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, res: Vec<u8>) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write(io, res).await
    }
}
