//! Server shutdown as WebSocket chat clients see it: every open `/ws/{room}` connection, in
//! several rooms, anonymous or not, gets a close frame with 1001 (going away, RFC 6455 §7.4.1)
//! rather than a dropped TCP connection (1006), and shutdown still completes.

use crate::chat_common;
use crate::common;

use chat_common::{Client, Closed, welcome};
use common::TestServer;
use onair::auth::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_chats_get_going_away_at_shutdown() {
    let server = TestServer::start().await;
    let mut clients = Vec::new();
    for (room, token) in [
        ("bye-a", None),
        ("bye-a", Some(server.token("bye-a", Role::Viewer, "v1"))),
        ("bye-b", Some(server.token("bye-b", Role::Moderator, "m1"))),
    ] {
        let mut client = Client::ws(&server, room, token).await;
        welcome(&mut client).await;
        clients.push(client);
    }
    clients[1].say("still here").await;
    clients[0].expect_chat("still here").await;

    let stop = tokio::spawn(server.stop());
    for client in &mut clients {
        assert_eq!(client.expect_closed().await, Closed::Code(1001));
    }
    tokio::time::timeout(std::time::Duration::from_secs(20), stop)
        .await
        .expect("shutdown completes")
        .unwrap();
}
