//! Chat integration-test helpers: one client type over both transports (the `chat` data channel
//! of a real WHIP/WHEP session from `onair_loadtest`, and a real WebSocket), with "wait for the
//! message that matches" reads. Waits are generous and only fail a test that hangs.

#![allow(dead_code)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use onair::auth::Role;
use onair_loadtest::{ChatChannel, PublishOptions, Publisher, ViewOptions, Viewer};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::TestServer;

/// Longest wait for any one expected event.
pub const WAIT: Duration = Duration::from_secs(20);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A chat participant.
pub enum Client {
    /// A WHEP viewer's data channel.
    Viewer(Box<Viewer>),
    /// A WHIP publisher's data channel.
    Publisher(Box<Publisher>),
    /// A WebSocket.
    Ws(Box<Ws>),
}

/// How a WebSocket ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// A close frame with this code.
    Code(u16),
    /// The stream ended without one.
    Eof,
}

impl Client {
    /// A WHEP viewer with a `chat` data channel, once the channel is open.
    pub async fn viewer(server: &TestServer, room: &str, token: Option<String>) -> Self {
        let viewer = Viewer::connect(ViewOptions {
            base_url: server.base.clone(),
            room: room.into(),
            token,
            chat: true,
            ..ViewOptions::default()
        })
        .await
        .expect("WHEP viewer connects");
        viewer
            .chat()
            .expect("chat requested")
            .wait_open(WAIT)
            .await
            .expect("chat data channel opens");
        Client::Viewer(Box::new(viewer))
    }

    /// An audio-only WHIP publisher with a `chat` data channel, once the channel is open.
    pub async fn publisher(server: &TestServer, room: &str, token: String) -> Self {
        let publisher = Publisher::connect(PublishOptions {
            base_url: server.base.clone(),
            room: room.into(),
            token: Some(token),
            video: None,
            chat: true,
            ..PublishOptions::default()
        })
        .await
        .expect("WHIP publisher connects");
        publisher
            .chat()
            .expect("chat requested")
            .wait_open(WAIT)
            .await
            .expect("chat data channel opens");
        Client::Publisher(Box::new(publisher))
    }

    /// A WebSocket on `/ws/{room}` (`?token=` when given).
    pub async fn ws(server: &TestServer, room: &str, token: Option<String>) -> Self {
        let base = server.base.replacen("http://", "ws://", 1);
        let url = match token {
            Some(t) => format!("{base}/ws/{room}?token={t}"),
            None => format!("{base}/ws/{room}"),
        };
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket upgrade");
        Client::Ws(Box::new(ws))
    }

    /// A client of `kind` ("dc" = WHEP data channel, "ws") for a token of `role`/`sub`.
    pub async fn as_user(server: &TestServer, room: &str, ws: bool, role: Role, sub: &str) -> Self {
        let token = server.token(room, role, sub);
        if ws {
            Self::ws(server, room, Some(token)).await
        } else {
            Self::viewer(server, room, Some(token)).await
        }
    }

    fn channel(&self) -> Option<&ChatChannel> {
        match self {
            Client::Viewer(v) => v.chat(),
            Client::Publisher(p) => p.chat(),
            Client::Ws(_) => None,
        }
    }

    /// Sends one text frame / data-channel message as is.
    pub async fn send_raw(&mut self, text: &str) {
        match self {
            Client::Ws(ws) => ws
                .send(Message::text(text.to_owned()))
                .await
                .expect("WebSocket send"),
            other => other
                .channel()
                .expect("data channel")
                .send_text(text)
                .await
                .expect("data channel send"),
        }
    }

    /// Sends a JSON message.
    pub async fn send(&mut self, value: Value) {
        self.send_raw(&value.to_string()).await;
    }

    /// Sends `{"type":"chat","text":text}`.
    pub async fn say(&mut self, text: &str) {
        self.send(json!({"type": "chat", "text": text})).await;
    }

    /// Sends a mod command: `{"type":"mod","action":action, ...fields}`.
    pub async fn command(&mut self, action: &str, fields: Value) {
        let mut message = json!({"type": "mod", "action": action});
        if let (Some(m), Some(f)) = (message.as_object_mut(), fields.as_object()) {
            m.extend(f.clone());
        }
        self.send(message).await;
    }

    /// The next message, or `None` once the connection closed.
    pub async fn next(&mut self) -> Option<Value> {
        let text = match self {
            Client::Ws(ws) => loop {
                match tokio::time::timeout(WAIT, ws.next()).await {
                    Err(_) => panic!("no WebSocket message within {WAIT:?}"),
                    Ok(None) | Ok(Some(Err(_))) => return None,
                    Ok(Some(Ok(Message::Text(t)))) => break t.to_string(),
                    Ok(Some(Ok(Message::Close(_)))) => return None,
                    Ok(Some(Ok(_))) => continue,
                }
            },
            other => match other.channel().expect("data channel").recv(WAIT).await {
                Ok(Some(text)) => text,
                Ok(None) => return None,
                Err(e) => panic!("no data-channel message: {e}"),
            },
        };
        Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
    }

    /// Skips messages until one satisfies `pred`; panics if the connection closes first.
    pub async fn expect(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut skipped = Vec::new();
        loop {
            match self.next().await {
                Some(v) if pred(&v) => return v,
                Some(v) => skipped.push(v),
                None => panic!("closed while waiting for {what}; skipped {skipped:?}"),
            }
        }
    }

    /// The next message of `type` (skipping others, such as presence).
    pub async fn expect_type(&mut self, kind: &str) -> Value {
        self.expect(kind, |v| v["type"] == kind).await
    }

    /// The next message of `type` other than `presence`, which must be of `kind`.
    pub async fn next_non_presence(&mut self) -> Value {
        loop {
            let v = self.next().await.expect("open connection");
            // A WHEP session's chat channel also carries its stage layout and the active
            // speaker (after the welcome); a chat client skips them like presence.
            if !matches!(v["type"].as_str(), Some("presence" | "stage" | "speaker")) {
                return v;
            }
        }
    }

    /// The next `error`, which must carry `code` (other messages are skipped).
    pub async fn expect_error(&mut self, code: &str) -> Value {
        let v = self.expect_type("error").await;
        assert_eq!(v["code"], code, "error code in {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        v
    }

    /// The chat message with `text` (skipping everything before it).
    pub async fn expect_chat(&mut self, text: &str) -> Value {
        self.expect(&format!("chat {text:?}"), |v| {
            v["type"] == "chat" && v["text"] == text
        })
        .await
    }

    /// Reads until the connection closes; for a WebSocket, the close code.
    pub async fn expect_closed(&mut self) -> Closed {
        match self {
            Client::Ws(ws) => loop {
                match tokio::time::timeout(WAIT, ws.next()).await {
                    Err(_) => panic!("WebSocket still open after {WAIT:?}"),
                    Ok(Some(Ok(Message::Close(frame)))) => {
                        return frame.map_or(Closed::Eof, |f| Closed::Code(f.code.into()));
                    }
                    Ok(None) | Ok(Some(Err(_))) => return Closed::Eof,
                    Ok(Some(Ok(_))) => continue,
                }
            },
            other => {
                while other.next().await.is_some() {}
                Closed::Eof
            }
        }
    }

    /// Closes the client (DELETE for WHIP/WHEP, close frame for WebSocket).
    pub async fn close(self) {
        match self {
            Client::Viewer(v) => {
                let _ = v.close().await;
            }
            Client::Publisher(p) => {
                let _ = p.close().await;
            }
            Client::Ws(mut ws) => {
                let _ = SinkExt::close(&mut *ws).await;
            }
        }
    }
}

/// Reads the welcome (the first message) and returns it.
pub async fn welcome(client: &mut Client) -> Value {
    let v = client.next().await.expect("welcome");
    assert_eq!(v["type"], "welcome", "first message is the welcome: {v}");
    v
}
