// jsforce (real, 3.x) through `sfkeep proxy` while the org kills the session.
//
// Environment: JSFORCE_DIR (holds node_modules/jsforce), PROXY_URL, SF_USERNAME, SF_PASSWORD
// (what clients send: anything on loopback, or the client key), SF_ADMIN_URL, SF_CLIENT_ID,
// SF_SESSION_TIMEOUT_SECS, SF_QUERIES (default 1000).
//
// Three connections share the queries: one with a placeholder access token and
// instanceUrl = the proxy (no credentials at all), one logged in with the OAuth
// username-password flow at the proxy, one with SOAP login() at the proxy. Between batches
// the session is killed at the org (timeout, logout, password change, admin revoke). Every
// token response the proxy hands out must carry instance_url = the proxy. Prints one JSON line.
'use strict';
const path = require('path');

async function main() {
  const env = process.env;
  for (const k of ['JSFORCE_DIR', 'PROXY_URL', 'SF_USERNAME', 'SF_PASSWORD', 'SF_ADMIN_URL', 'SF_CLIENT_ID', 'SF_SESSION_TIMEOUT_SECS']) {
    if (!env[k]) throw new Error(`missing environment: ${k}`);
  }
  const jsforce = require(path.join(env.JSFORCE_DIR, 'node_modules', 'jsforce'));
  const proxy = env.PROXY_URL.replace(/\/$/, '');
  const admin = env.SF_ADMIN_URL.replace(/\/$/, '');
  const total = parseInt(env.SF_QUERIES || '1000', 10);
  const advance = parseInt(env.SF_SESSION_TIMEOUT_SECS, 10) + 60;
  const user = encodeURIComponent(env.SF_USERNAME);
  const out = { ok: false, version: require(path.join(env.JSFORCE_DIR, 'node_modules', 'jsforce', 'package.json')).version,
                queries: 0, errors: 0, messages: [], kills: [], refreshes: 0, token_responses: [] };

  const post = async (url, body) => {
    const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body || {}) });
    return r.status;
  };
  const kill = async (kind) => {
    switch (kind) {
      case 'timeout': return post(`${admin}/clock/advance`, { seconds: advance });
      case 'logout': return post(`${admin}/users/${user}/logout`);
      case 'password': return post(`${admin}/users/${user}/password`, { password: 'New-' + Math.random().toString(36).slice(2) });
      case 'revoke': return post(`${admin}/apps/${encodeURIComponent(env.SF_CLIENT_ID)}/revoke`);
      default: throw new Error(kind);
    }
  };

  // 1. Placeholder token, instanceUrl = the proxy, no credentials.
  const placeholder = new jsforce.Connection({ instanceUrl: proxy, accessToken: 'placeholder', version: '59.0' });

  // 2. OAuth username-password flow at the proxy's token endpoint.
  const oauth = new jsforce.Connection({
    oauth2: { clientId: 'placeholder-client', clientSecret: 'placeholder-secret', loginUrl: proxy },
    version: '59.0',
  });
  oauth.on('refresh', () => { out.refreshes += 1; });
  const info = await oauth.login(env.SF_USERNAME, env.SF_PASSWORD);
  out.token_responses.push({ flow: 'password', instance_url: oauth.instanceUrl, org: info.organizationId });

  // 3. A refresh-token grant at the proxy, as jsforce's refresh delegate would send it.
  const refreshing = new jsforce.Connection({
    oauth2: { clientId: 'placeholder-client', clientSecret: env.SF_PASSWORD, loginUrl: proxy },
    instanceUrl: proxy, accessToken: 'placeholder', refreshToken: 'placeholder-refresh', version: '59.0',
  });
  const refreshed = await refreshing.oauth2.refreshToken('placeholder-refresh');
  out.token_responses.push({ flow: 'refresh_token', instance_url: refreshed.instance_url });

  // 4. SOAP login() at the proxy (jsforce warns that SOAP login is deprecated).
  const origWarn = console.warn;
  console.warn = () => {};
  const soap = new jsforce.Connection({ loginUrl: proxy, version: '59.0' });
  await soap.login(env.SF_USERNAME, env.SF_PASSWORD);
  console.warn = origWarn;
  out.token_responses.push({ flow: 'soap', instance_url: soap.instanceUrl });

  const conns = [placeholder, oauth, soap];
  const schedule = ['timeout', 'logout', 'password', 'revoke'];
  const batches = schedule.length + 1;
  let done = 0;
  for (let b = 0; b < batches; b++) {
    const n = Math.floor(total / batches) + (b < total % batches ? 1 : 0);
    for (let i = 0; i < n; i++) {
      const conn = conns[done % conns.length];
      try {
        const res = await conn.query('SELECT Id, Name FROM Account LIMIT 5');
        if (!res.records || res.records.length === 0) throw new Error('no records');
      } catch (e) {
        out.errors += 1;
        if (out.messages.length < 5) out.messages.push(`${e.name}: ${String(e.message).slice(0, 300)}`);
      }
      done += 1;
    }
    if (b < schedule.length) out.kills.push({ after: done, kind: schedule[b], status: await kill(schedule[b]) });
  }
  out.queries = done;
  out.instance_urls = conns.map((c) => c.instanceUrl);
  const allProxy = out.token_responses.every((t) => t.instance_url === proxy) && out.instance_urls.every((u) => u === proxy);
  out.ok = out.errors === 0 && done === total && allProxy && out.refreshes === 0;
  return out;
}

main().then(
  (out) => { console.log(JSON.stringify(out)); process.exit(out.ok ? 0 : 1); },
  (e) => { console.log(JSON.stringify({ ok: false, error: String(e && e.stack || e).slice(0, 1000) })); process.exit(1); },
);
