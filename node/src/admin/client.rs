//! A small blocking client of the admin API, for the CLI: finds the node through
//! `DIR/admin.json` and speaks HTTP/1.1 with one request per connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::api::{AdminFile, ApiError};
use crate::error::NodeError;

/// Largest response read.
const MAX_RESPONSE: u64 = 16 << 20;

/// A client of one node's admin API.
pub struct AdminClient {
    file: AdminFile,
    timeout: Duration,
}

impl AdminClient {
    /// The client of the node whose data dir is `dir` (it must be running).
    pub fn for_dir(dir: &Path) -> Result<AdminClient, NodeError> {
        Ok(AdminClient {
            file: AdminFile::read(dir)?,
            timeout: Duration::from_secs(10),
        })
    }

    /// A client of the API at `address`, with `token`.
    pub fn new(address: &str, token: &str) -> AdminClient {
        let file = AdminFile {
            address: address.to_owned(),
            token: token.to_owned(),
            pid: 0,
        };
        AdminClient {
            file,
            timeout: Duration::from_secs(10),
        }
    }

    /// `GET path`, decoding the JSON answer.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, NodeError> {
        let (code, body) = self.send("GET", path, None)?;
        decode(code, &body)
    }

    /// `POST path` with a JSON body.
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, NodeError> {
        let json = serde_json::to_vec(body).map_err(|e| NodeError::Admin(e.to_string()))?;
        let (code, body) = self.send("POST", path, Some(&json))?;
        decode(code, &body)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<(), NodeError> {
        let (code, body) = self.send("DELETE", path, None)?;
        if (200..300).contains(&code) {
            Ok(())
        } else {
            Err(api_error(code, &body))
        }
    }

    /// The node's last `n` audit entries, oldest first (`GET /audit?n=N`; the node returns at
    /// most 1,000).
    pub fn audit_tail(&self, n: usize) -> Result<Vec<pods_policy::audit::Entry>, NodeError> {
        self.get(&format!("/audit?n={n}"))
    }

    /// Sends one request; returns the status code and the body.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<(u16, Vec<u8>), NodeError> {
        let unreachable = |e: std::io::Error| {
            NodeError::Admin(format!(
                "cannot reach the node at {} ({e}); is it running?",
                self.file.address
            ))
        };
        let mut stream = TcpStream::connect(&self.file.address).map_err(unreachable)?;
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(unreachable)?;
        stream
            .set_write_timeout(Some(self.timeout))
            .map_err(unreachable)?;
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.file.address,
            self.file.token,
            body.len()
        );
        stream.write_all(head.as_bytes()).map_err(unreachable)?;
        stream.write_all(body).map_err(unreachable)?;
        let mut raw = Vec::new();
        stream
            .take(MAX_RESPONSE)
            .read_to_end(&mut raw)
            .map_err(unreachable)?;
        parse_response(&raw)
    }
}

fn bad(what: &str) -> NodeError {
    NodeError::Admin(format!(
        "the node sent a response this client cannot read: {what}"
    ))
}

/// Splits an HTTP/1.1 response into its status code and body (plain or chunked).
fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), NodeError> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("a header that is not text"))?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let code = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| bad("no status line"))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Ok((code, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("a chunk without size"))?;
        let size = std::str::from_utf8(&rest[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .ok_or_else(|| bad("a chunk size that is not hex"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok((code, out));
        }
        if rest.len() < size + 2 {
            return Err(bad("a chunk cut short"));
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn api_error(code: u16, body: &[u8]) -> NodeError {
    let message = serde_json::from_slice::<ApiError>(body)
        .map(|e| e.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
    NodeError::Admin(format!("{code}: {message}"))
}

fn decode<T: DeserializeOwned>(code: u16, body: &[u8]) -> Result<T, NodeError> {
    if !(200..300).contains(&code) {
        return Err(api_error(code, body));
    }
    serde_json::from_slice(body).map_err(|e| bad(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_chunked_bodies_are_read() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain).unwrap(), (200, b"{}".to_vec()));
        let chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (404, b"abcde".to_vec()));
        assert!(parse_response(b"HTTP/1.1 200").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
    }
}
