//! TURN over TCP (I/O, RFC 8656 §3.1): each connection is one client; STUN and ChannelData
//! messages are split from the stream (RFC 8656 §12.5 framing) and answered on a bounded
//! per-connection queue. Closing the connection ends its allocation.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rtc_shared::turn_framing::TurnStreamDecoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::Shared;
use crate::core::{ClientId, Transport};

/// Messages queued towards one TCP client before further ones are dropped.
const QUEUE: usize = 256;

/// Accepts connections until shutdown, at most `max_connections` at once.
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    max_connections: usize,
) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            _ = shared.stop.cancelled() => break,
            r = listener.accept() => r,
        };
        let Ok((stream, addr)) = accepted else {
            continue;
        };
        if open.load(Ordering::Relaxed) >= max_connections {
            tracing::debug!(%addr, "TURN TCP connection refused: too many connections");
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let open = open.clone();
        let shared2 = shared.clone();
        shared.tasks.spawn(async move {
            connection(shared2, stream, addr).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn connection(shared: Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    let client = ClientId {
        transport: Transport::Tcp,
        addr,
    };
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    shared.lock().tcp.insert(addr, tx);
    let stop = shared.stop.clone();
    let write_task = async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    };
    let read_task = async {
        let mut decoder = TurnStreamDecoder::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            decoder.extend_from_slice(&buf[..n]);
            loop {
                match decoder.next_message() {
                    Ok(Some(message)) => shared.on_client(client, &message),
                    Ok(None) => break,
                    // Not TURN: a stream cannot resynchronise, so it ends.
                    Err(_) => return,
                }
            }
        }
    };
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = read_task => {}
        _ = write_task => {}
    }
    shared.client_gone(client);
}
