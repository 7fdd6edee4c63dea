//! Reading a Server-Sent Events stream: bytes in, events out.
//!
//! Just what `GET /api/events` sends: `event:`, `data:` (lines joined
//! with `\n`) and `id:` fields, comments (keep-alives), `\n` or `\r\n`
//! line ends. `retry:` and unknown fields are ignored, as the standard
//! says.

use std::time::Instant;

use futures_util::{Stream, StreamExt};

/// One event: its name (`message` when the server gave none), id and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// Events from a byte stream.
pub struct SseReader<S> {
    bytes: S,
    buffer: Vec<u8>,
    event: Option<String>,
    id: Option<String>,
    data: Option<String>,
    /// When the server last sent anything, keep-alives included.
    last_seen: Instant,
}

impl<S, B, E> SseReader<S>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
{
    pub fn new(bytes: S) -> Self {
        Self {
            bytes,
            buffer: Vec::new(),
            event: None,
            id: None,
            data: None,
            last_seen: Instant::now(),
        }
    }

    /// When the server last sent a byte.
    pub fn last_seen(&self) -> Instant {
        self.last_seen
    }

    /// The next event; `None` once the stream ended, `Some(Err)` if it broke.
    /// Cancel-safe (a follower waits on it under a timeout): what was read
    /// is kept in the buffer, and nothing else awaits.
    pub async fn next(&mut self) -> Option<Result<SseEvent, E>> {
        loop {
            while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches('\n').trim_end_matches('\r');
                if let Some(event) = self.line(line) {
                    return Some(Ok(event));
                }
            }
            match self.bytes.next().await? {
                Ok(chunk) => {
                    self.last_seen = Instant::now();
                    self.buffer.extend_from_slice(chunk.as_ref());
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Takes one line; a blank one ends the event being read.
    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = self.event.take();
            let id = self.id.take();
            let data = self.data.take()?;
            return Some(SseEvent {
                event: event.unwrap_or_else(|| "message".to_string()),
                id,
                data,
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_string();
        match field {
            "event" => self.event = Some(value),
            "id" => self.id = Some(value),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(&value);
                }
                None => self.data = Some(value),
            },
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(chunks: &[&'static str]) -> SseReader<impl Stream<Item = Result<&'static str, ()>>> {
        let chunks: Vec<Result<&'static str, ()>> = chunks.iter().map(|c| Ok(*c)).collect();
        SseReader::new(futures_util::stream::iter(chunks))
    }

    #[tokio::test]
    async fn events_split_anywhere_with_comments_and_crlf() {
        let mut events = reader(&[
            ": keep-alive\n\nevent: deploy",
            "ment\r\nid: 7\r\ndata: {\"a\":\ndata: 1}\r\n",
            "\r\ndata: plain\n",
            "retry: 10\n\n",
        ]);
        assert_eq!(
            events.next().await,
            Some(Ok(SseEvent {
                event: "deployment".into(),
                id: Some("7".into()),
                data: "{\"a\":\n1}".into(),
            }))
        );
        assert_eq!(
            events.next().await,
            Some(Ok(SseEvent {
                event: "message".into(),
                id: None,
                data: "plain".into(),
            }))
        );
        assert_eq!(events.next().await, None);
    }

    #[tokio::test]
    async fn an_event_the_stream_cut_short_is_not_made_up() {
        let mut events = reader(&["event: lagged\ndata: {\"missed\":3}\n"]);
        assert_eq!(events.next().await, None);
    }

    #[tokio::test]
    async fn a_broken_stream_says_so() {
        let chunks: Vec<Result<&'static str, &str>> = vec![Ok("data: x\n\n"), Err("reset")];
        let mut events = SseReader::new(futures_util::stream::iter(chunks));
        assert!(matches!(events.next().await, Some(Ok(_))));
        assert_eq!(events.next().await, Some(Err("reset")));
    }
}
