//! Helpers shared by the integration tests.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use volley_net::Acceptor;

/// Start an echo server on 127.0.0.1 with `acceptor` (TLS if it has a TLS
/// configuration); returns its address.
pub(crate) async fn echo_server(acceptor: Acceptor) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok((mut ws, _)) = acceptor.accept_tcp(tcp).await else {
                    return;
                };
                while let Ok(Some(m)) = ws.recv().await {
                    if ws.feed(m).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}
