//! Local stand-ins for the services keyward talks to, on 127.0.0.1: a
//! provider's public-keys endpoint with a real P-256 key pair, an HTTP
//! receiver that records what it is sent, and an SMTP sink.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::{any, get};
use axum::Router;
use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// A provider's signing key and its published keys document.
pub struct PartnerSigner {
    pub key_id: String,
    signing: SigningKey,
}

impl PartnerSigner {
    pub fn new(seed: u8, key_id: &str) -> PartnerSigner {
        let mut bytes = [seed; 32];
        bytes[0] = 1;
        PartnerSigner {
            key_id: key_id.to_string(),
            signing: SigningKey::from_bytes(&bytes.into()).unwrap(),
        }
    }

    /// Base64 DER ECDSA P-256/SHA-256 signature of `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        let signature: Signature = self.signing.sign(body);
        base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
    }

    pub fn public_pem(&self) -> String {
        self.signing.verifying_key().to_public_key_pem(LineEnding::LF).unwrap()
    }
}

/// Serves `{"public_keys": [...]}` as GitHub's and GitLab's endpoints do.
pub async fn keys_endpoint(keys: &[(&PartnerSigner, bool)]) -> String {
    let document = serde_json::json!({
        "public_keys": keys.iter().map(|(k, current)| serde_json::json!({
            "key_identifier": k.key_id, "key": k.public_pem(), "is_current": current
        })).collect::<Vec<_>>()
    });
    let body = document.to_string();
    serve(Router::new().route("/keys", get(move || async move { ([("content-type", "application/json")], body) }))).await + "/keys"
}

/// Records every request: headers and body.
#[derive(Clone, Default)]
pub struct Receiver {
    pub hits: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

impl Receiver {
    pub async fn start() -> (Receiver, String) {
        let receiver = Receiver::default();
        let url = Self::start_on(receiver.clone(), tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await;
        (receiver, url)
    }

    pub async fn start_on(receiver: Receiver, listener: tokio::net::TcpListener) -> String {
        let addr = listener.local_addr().unwrap();
        let hits = receiver.hits.clone();
        let router = Router::new().route(
            "/{*path}",
            any(move |headers: HeaderMap, body: Bytes| {
                let hits = hits.clone();
                async move {
                    hits.lock().unwrap().push((headers, body));
                    "ok"
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{addr}/hook")
    }

    pub fn count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }
}

/// A minimal SMTP server that accepts every message and keeps its DATA.
#[derive(Clone, Default)]
pub struct SmtpSink {
    pub messages: Arc<Mutex<Vec<String>>>,
}

impl SmtpSink {
    pub async fn start() -> (SmtpSink, String) {
        let sink = SmtpSink::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let messages = sink.messages.clone();
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                tokio::spawn(session(socket, messages.clone()));
            }
        });
        (sink, format!("smtp://{addr}"))
    }

    pub fn count(&self) -> usize {
        self.messages.lock().unwrap().len()
    }
}

async fn session(socket: tokio::net::TcpStream, messages: Arc<Mutex<Vec<String>>>) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
    while let Ok(Some(line)) = lines.next_line().await {
        let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250-sink\r\n250 8BITMIME\r\n",
            "DATA" => {
                let _ = write.write_all(b"354 go ahead\r\n").await;
                let mut data = String::new();
                while let Ok(Some(l)) = lines.next_line().await {
                    if l == "." {
                        break;
                    }
                    data.push_str(&l);
                    data.push('\n');
                }
                messages.lock().unwrap().push(data);
                b"250 queued\r\n"
            }
            "QUIT" => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => b"250 ok\r\n",
        };
        let _ = write.write_all(reply).await;
    }
}
