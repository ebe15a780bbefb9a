// jsforce (real, 3.x, from npm) against the simulated org: arrays of records go through SObject
// Collections (create, update, destroy), identity() reads the identity URL, and a session death
// costs one refresh-token request (docs/salesforce-composite.md).
//
// Environment: JSFORCE_DIR (holds node_modules/jsforce), SF_URL, SF_ADMIN_URL, SF_USERNAME,
// SF_CLIENT_ID, SF_CLIENT_SECRET, SF_REFRESH_TOKEN. Prints one JSON line; never prints a token.
'use strict';
const path = require('path');

async function main() {
  const env = process.env;
  for (const k of ['JSFORCE_DIR', 'SF_URL', 'SF_ADMIN_URL', 'SF_USERNAME', 'SF_CLIENT_ID', 'SF_CLIENT_SECRET', 'SF_REFRESH_TOKEN']) {
    if (!env[k]) throw new Error(`missing environment: ${k}`);
  }
  const jsforce = require(path.join(env.JSFORCE_DIR, 'node_modules', 'jsforce'));
  const admin = env.SF_ADMIN_URL.replace(/\/$/, '');
  const stats = async () => (await fetch(`${admin}/stats`)).json();
  const out = { ok: false, checks: {} };
  const check = (name, cond, detail) => {
    out.checks[name] = !!cond;
    if (!cond) (out.failures = out.failures || []).push(`${name}: ${JSON.stringify(detail)}`);
  };

  const conn = new jsforce.Connection({
    oauth2: { clientId: env.SF_CLIENT_ID, clientSecret: env.SF_CLIENT_SECRET, loginUrl: env.SF_URL },
    instanceUrl: env.SF_URL,
    refreshToken: env.SF_REFRESH_TOKEN,
    accessToken: 'placeholder-until-the-first-refresh',
    version: '59.0',
  });
  let refreshes = 0;
  conn.on('refresh', () => { refreshes += 1; });

  const stamp = Date.now();
  const created = await conn.sobject('Account').create([
    { Name: `JS ${stamp} 0` }, { Name: `JS ${stamp} 1` }, { Industry: 'Energy' },
  ], { allOrNone: false });
  check('create_array', created.length === 3 && created[0].success && created[1].success && !created[2].success
    && created[2].errors[0].statusCode === 'REQUIRED_FIELD_MISSING', created);
  const ids = created.filter((r) => r.success).map((r) => r.id);

  const updated = await conn.sobject('Account').update(ids.map((Id) => ({ Id, BillingCity: 'Porto' })));
  check('update_array', updated.length === 2 && updated.every((r) => r.success), updated);
  const rows = await conn.query(`SELECT Id, BillingCity FROM Account WHERE Name LIKE 'JS ${stamp}%'`);
  check('updated_values', rows.totalSize === 2 && rows.records.every((r) => r.BillingCity === 'Porto'), rows.records);

  const identity = await conn.identity();
  check('identity', identity.username === env.SF_USERNAME && identity.organization_id && identity.user_id, identity.username);

  // One session death: jsforce refreshes once and retries.
  const before = (await stats()).token_requests.refresh_token;
  await fetch(`${admin}/users/${encodeURIComponent(env.SF_USERNAME)}/logout`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  const destroyed = await conn.sobject('Account').destroy(ids);
  const after = (await stats()).token_requests.refresh_token;
  out.refresh_requests_per_death = after - before;
  check('destroy_array_after_death', destroyed.length === 2 && destroyed.every((r) => r.success), destroyed);
  check('one_refresh_per_death', after - before === 1, after - before);
  const left = await conn.query(`SELECT COUNT() FROM Account WHERE Name LIKE 'JS ${stamp}%'`);
  check('destroyed', left.totalSize === 0, left.totalSize);
  out.refreshes = refreshes;
  out.ok = !out.failures;
  console.log(JSON.stringify(out));
  process.exit(out.ok ? 0 : 1);
}

main().catch((e) => {
  console.log(JSON.stringify({ ok: false, error: `${e.name}: ${e.message}` }));
  process.exit(1);
});
