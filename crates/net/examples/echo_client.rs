//! Send each line of stdin to an echo server and print what comes back.
//!
//! ```text
//! cargo run --release -- echo &
//! cargo run -p volley-net --example echo_client -- ws://127.0.0.1:9001
//! ```

use tokio::io::{AsyncBufReadExt, BufReader};
use volley_net::{connect, CloseCode, Message};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001".to_owned());
    let mut ws = connect(&url).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        ws.send(Message::from(line)).await?;
        match ws.recv().await? {
            Some(Message::Text(text)) => println!("{text}"),
            Some(Message::Binary(bytes)) => println!("<{} binary bytes>", bytes.len()),
            None => break,
        }
    }
    ws.close(CloseCode::NORMAL, "bye").await?;
    Ok(())
}
