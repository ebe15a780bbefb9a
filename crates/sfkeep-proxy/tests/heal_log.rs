//! Issue 22 item 12: the proxy logs one line when it heals a dead session and one when it
//! replays a request, and nothing about it when nothing died. Alone in its test binary: it
//! installs the process's log subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_line_per_heal_and_per_replay() {
    let lines = Lines::default();
    let sink = lines.clone();
    tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();
    let env = start(2).await;
    let c = client();
    let url = format!("{}{QUERY}", env.proxy.url());
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(lines.count("healing"), 0);
    admin_post(
        &env.info,
        &format!("/users/{}/logout", env.info.username),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(
        lines.count("the org refused the proxy's session: healing"),
        1
    );
    assert_eq!(
        lines.count("replaying the request once with the new session"),
        1
    );
    // The lines name the API and the generations, never the token.
    let text = String::from_utf8_lossy(&lines.0.lock().unwrap()).into_owned();
    let heal = text.lines().find(|l| l.contains("healing")).unwrap();
    assert!(
        heal.contains("api=\"rest\"") || heal.contains("api=rest"),
        "{heal}"
    );
    assert!(!text.contains("!SFKEEP") && !text.contains(&env.info.refresh_token));
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(lines.count("healing"), 1, "nothing died the second time");
}
