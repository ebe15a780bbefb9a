//! A web page in a real browser (Debian's headless Chromium, driven by playwright-core) served
//! from another loopback origin tries to use the proxy the ways the review showed: a `no-cors`
//! `fetch` POST with a `text/plain` body that would create an Account, a form POST, a `no-cors`
//! POST to `/_sfkeep/reload`, and a `fetch` with a JSON body (which needs a preflight). Nothing
//! reaches the simulated org: its `/_fake/stats` and its Account count are unchanged, and no
//! token request is made. Skipped, with a message, where Chromium is not installed
//! (`scripts/test` installs it).

mod common;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The page: each attempt in turn, then `window.sfkeepDone`.
fn page(proxy: &str) -> String {
    format!(
        r#"<!doctype html><html><body>
<iframe name="sink"></iframe>
<form id="f" method="POST" target="sink" action="{proxy}/services/data/v59.0/sobjects/Account" enctype="text/plain">
<input name='{{"Name":"form post","x":"' value='"}}'></form>
<script>
window.sfkeepReport = {{}};
async function attempt(name, f) {{
  try {{ const r = await f(); window.sfkeepReport[name] = r && r.type ? r.type + ':' + r.status : 'sent'; }}
  catch (e) {{ window.sfkeepReport[name] = 'error:' + e.name; }}
}}
(async () => {{
  await attempt('no_cors_text_plain', () => fetch('{proxy}/services/data/v59.0/sobjects/Account', {{
    method: 'POST', mode: 'no-cors', headers: {{ 'Content-Type': 'text/plain' }},
    body: JSON.stringify({{ Name: 'made by a web page' }}) }}));
  await attempt('reload', () => fetch('{proxy}/_sfkeep/reload', {{ method: 'POST', mode: 'no-cors' }}));
  await attempt('json_cors', () => fetch('{proxy}/services/data/v59.0/sobjects/Account', {{
    method: 'POST', headers: {{ 'Content-Type': 'application/json' }},
    body: JSON.stringify({{ Name: 'cors' }}) }}));
  await attempt('get_query', () => fetch('{proxy}{QUERY}', {{ mode: 'no-cors' }}));
  await new Promise((done) => {{
    document.querySelector('iframe').addEventListener('load', () => done(), {{ once: true }});
    document.getElementById('f').submit();
  }});
  window.sfkeepReport.form = 'submitted';
  window.sfkeepDone = true;
}})();
</script></body></html>"#
    )
}

/// Serves `html` to every request on a new loopback port; returns its URL.
async fn serve_page(html: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let html = html.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                    html.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_origin_cannot_use_the_proxy_in_chromium() {
    let Some(chromium) = common::node::chromium() else {
        eprintln!("SKIPPED: no Chromium (scripts/test installs Debian's chromium)");
        return;
    };
    let deps = common::node::node_deps_dir();
    let env = start(3).await;
    let c = client();
    // The proxy has its token before the page loads: any token request later is the page's doing.
    assert_eq!(
        c.get(format!("{}{QUERY}", env.proxy.url()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let before = org_stats(&env.info).await;
    let page_url = serve_page(page(env.proxy.url())).await;
    let out = tokio::process::Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/node/browser_page.js"
        ))
        .env("NODE_DEPS_DIR", &deps)
        .env("PAGE_URL", &page_url)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser run failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    // Every attempt reached the proxy and was refused there (the CORS one at its preflight).
    assert!(
        eventually(std::time::Duration::from_secs(10), || async {
            env.proxy.stats().browser_refused >= 5
        })
        .await,
        "{report} {:?}",
        env.proxy.stats()
    );
    let after = org_stats(&env.info).await;
    assert_eq!(
        after["api_requests"], before["api_requests"],
        "{report}: nothing forwarded"
    );
    assert_eq!(
        token_requests(&after),
        token_requests(&before),
        "no token request"
    );
    assert_eq!(after["records"]["Account"], before["records"]["Account"]);
    assert_eq!(env.proxy.stats().reloads, 0);
    println!("BROWSER report {report}, proxy {:?}", env.proxy.stats());
}
