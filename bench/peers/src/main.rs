//! `peer-echo IMPL ADDR`: an echo server on another WebSocket library, for
//! `bench/compare.sh`. Each is written the way that library's own echo
//! example is, with its default settings. `VOLLEY_THREADS` sets the tokio
//! worker threads, as for `volley echo`.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(implementation), Some(addr)) = (args.next(), args.next()) else {
        eprintln!("usage: peer-echo tokio-tungstenite|fastwebsockets|tokio-websockets HOST:PORT");
        std::process::exit(2);
    };
    let addr: SocketAddr = addr.parse().expect("HOST:PORT");
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("VOLLEY_THREADS").ok().and_then(|v| v.parse().ok()) {
        builder.worker_threads(n);
    }
    let runtime = builder.enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(addr).await.expect("bind");
        eprintln!("{implementation} echo on ws://{addr}");
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            match implementation.as_str() {
                "tokio-tungstenite" => tokio::spawn(tungstenite_echo(stream)),
                "fastwebsockets" => tokio::spawn(fastwebsockets_echo(stream)),
                "tokio-websockets" => tokio::spawn(tokio_websockets_echo(stream)),
                other => panic!("unknown implementation {other}"),
            };
        }
    });
}

/// tokio-tungstenite's examples/echo-server.rs.
async fn tungstenite_echo(stream: TcpStream) {
    use futures_util::{future, StreamExt, TryStreamExt};
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
    let (write, read) = ws.split();
    let _ = read
        .try_filter(|m| future::ready(m.is_text() || m.is_binary()))
        .forward(write)
        .await;
}

/// fastwebsockets' examples/echo_server.rs: hyper serves the upgrade.
async fn fastwebsockets_echo(stream: TcpStream) {
    use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
    use http_body_util::Empty;
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response};

    async fn client(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
        let mut ws = FragmentCollector::new(fut.await?);
        loop {
            let frame = ws.read_frame().await?;
            match frame.opcode {
                OpCode::Close => break,
                OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
                _ => {}
            }
        }
        Ok(())
    }

    async fn upgrade_request(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
        let (response, fut) = upgrade::upgrade(&mut req)?;
        tokio::spawn(async move {
            let _ = client(fut).await;
        });
        Ok(response)
    }

    let io = hyper_util::rt::TokioIo::new(stream);
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, hyper::service::service_fn(upgrade_request))
        .with_upgrades()
        .await;
}

/// tokio-websockets' examples/echo_server.rs.
async fn tokio_websockets_echo(stream: TcpStream) {
    use futures_util::{SinkExt, StreamExt};
    let Ok((_request, mut ws)) = tokio_websockets::ServerBuilder::new().accept(stream).await else { return };
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_text() || msg.is_binary() {
            if ws.send(msg).await.is_err() {
                return;
            }
        }
    }
}
