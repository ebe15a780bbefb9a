"""``TokenManager.from_profile``: a manager from an sfkeep profile, built as the CLI builds it
(same file, secrets, grants, store and store key), so Python and ``sfkeep`` CLI processes of one
profile share one token; and what a profile that cannot work raises."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import sfkeep
import sfkeep.requests
from conftest import sfkeep_bin

V = "v59.0"


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    """The CLI's environment: its own home (audit log, config dir); the cache key comes from
    the profile's key file, as it does for the wheel (SFKEEP_CACHE_KEY would win for both)."""
    monkeypatch.delenv("SFKEEP_CACHE_KEY", raising=False)
    monkeypatch.delenv("SFKEEP_PROFILE", raising=False)
    return dict(os.environ, HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"),
                XDG_CONFIG_HOME=str(tmp_path / "config"))


def cli(org, env, *args, config=None):
    r = subprocess.run([sfkeep_bin(), "--config", str(config or org["profile_file"]), "--profile", "fake", *args],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def cli_status(org, env, config=None):
    return json.loads(cli(org, env, "status", "--json", config=config))["result"]


def test_from_profile_shares_the_cli_profile_token_and_store(org, cli_env, captured):
    # The profile `sfkeep fake-org` writes: refresh token grant, JWT fallback, encrypted file
    # store with a key file; every secret a file reference.
    m = sfkeep.TokenManager.from_profile("fake", config=org["profile_file"])
    captured.add(m, m.status())
    t = m.token()
    assert org.token_requests() == 1
    assert t.instance_url == org["instance_url"]
    s = m.status()
    assert s.state == "fresh" and s.store.startswith("file"), (s.state, s.store)
    # The CLI sees the token Python stored, under the profile's own key: no token request.
    assert cli_status(org, cli_env)["fingerprint"] == t.fingerprint
    cli(org, cli_env, "api", "GET", "limits")
    assert org.token_requests() == 1, org.stats()["token_requests"]

    # A death seen first by the CLI: it refreshes once; Python adopts what it stored.
    org.user("logout")
    cli(org, cli_env, "api", "GET", "limits")
    assert org.token_requests() == 2
    session = sfkeep.requests.session(m)
    assert session.get(f"{org['instance_url']}/services/data/{V}/limits").status_code == 200
    assert org.token_requests() == 2, org.stats()["token_requests"]
    assert m.token().fingerprint == cli_status(org, cli_env)["fingerprint"]

    # A death seen first by Python: the CLI uses what Python stored.
    org.user("logout")
    assert session.get(f"{org['instance_url']}/services/data/{V}/limits").status_code == 200
    assert org.token_requests() == 3
    cli(org, cli_env, "api", "GET", "limits")
    assert org.token_requests() == 3, org.stats()["token_requests"]
    assert cli_status(org, cli_env)["fingerprint"] == m.token().fingerprint
    assert org.stats()["token_requests"]["refresh_token"] == 3


def test_from_profile_finds_the_file_and_the_profile_as_the_cli_does(org, cli_env, tmp_path, monkeypatch):
    text = Path(org["profile_file"]).read_text()
    # ./sfkeep.toml and $SFKEEP_PROFILE, with a relative store path (relative to the file).
    work = tmp_path / "work"
    work.mkdir()
    (work / "sfkeep.toml").write_text(
        text.replace("[profiles.fake]", "[profiles.billing]").replace("[profiles.fake.store]", "[profiles.billing.store]")
        .replace(f'path = "{Path(org["profile_file"]).parent / "tokens.enc"}"', 'path = "billing.tokens"'))
    monkeypatch.chdir(work)
    monkeypatch.setenv("SFKEEP_PROFILE", "billing")
    m = sfkeep.TokenManager.from_profile()
    m.token()
    assert (work / "billing.tokens").exists()
    assert "profile `billing`" in repr(m), repr(m)
    # The user config dir when there is no ./sfkeep.toml.
    monkeypatch.chdir(tmp_path)
    conf = Path(cli_env["XDG_CONFIG_HOME"]) / "sfkeep"
    conf.mkdir(parents=True)
    (conf / "sfkeep.toml").write_text(text)
    monkeypatch.setenv("XDG_CONFIG_HOME", cli_env["XDG_CONFIG_HOME"])
    before = org.token_requests()
    m = sfkeep.TokenManager.from_profile("fake")
    m.token()
    assert org.token_requests() == before + 1, "the fake profile's store was empty"
    assert cli_status(org, cli_env)["fingerprint"] == m.token().fingerprint


def test_a_profile_without_a_refresh_token_uses_the_stored_one_or_its_fallback(org, cli_env, tmp_path, captured):
    text = Path(org["profile_file"]).read_text()
    rt_line = next(line for line in text.splitlines() if line.startswith("refresh_token"))
    fb_line = next(line for line in text.splitlines() if line.startswith("fallback_grant"))
    no_rt = tmp_path / "no_rt.toml"
    no_rt.write_text(text.replace(rt_line + "\n", "").replace(fb_line + "\n", ""))
    # Nothing configured, nothing stored, no fallback: only a person can help, at once.
    with pytest.raises(sfkeep.ReauthRequired) as e:
        sfkeep.TokenManager.from_profile("fake", config=no_rt)
    captured.add(e.value)
    assert e.value.cause == "no_refresh_token" and "sfkeep login" in e.value.fix, (e.value.cause, e.value.fix)
    assert "profile `fake`" in str(e.value) and str(no_rt) in str(e.value)
    assert org.token_requests() == 0
    # With the JWT fallback, it starts with the fallback (as `sfkeep token` does).
    with_fallback = tmp_path / "fallback.toml"
    with_fallback.write_text(text.replace(rt_line + "\n", ""))
    m = sfkeep.TokenManager.from_profile("fake", config=with_fallback)
    m.token()
    assert org.stats()["token_requests"]["jwt_bearer"] == 1
    # A refresh token the CLI stored (`sfkeep login --sfdx-url`, as after `--web`) is used.
    sfdx = "force://{}:{}:{}@{}".format(org["client_id"], org["client_secret"], org["refresh_token"],
                                        org["login_url"].removeprefix("http://"))
    r = subprocess.run([sfkeep_bin(), "--config", str(no_rt), "--profile", "fake", "login", "--sfdx-url", "-"],
                       input=sfdx, env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    before = org.stats()["token_requests"]
    m = sfkeep.TokenManager.from_profile("fake", config=no_rt)
    assert m.token().fingerprint == cli_status(org, cli_env, config=no_rt)["fingerprint"]
    org.user("logout")
    session = sfkeep.requests.session(m)
    assert session.get(f"{org['instance_url']}/services/data/{V}/limits").status_code == 200
    after = org.stats()["token_requests"]
    assert after["refresh_token"] - before["refresh_token"] == 1 and after["jwt_bearer"] == before["jwt_bearer"]


def test_a_profile_that_cannot_work_is_a_config_error_naming_file_and_key(org, cli_env, tmp_path, captured):
    text = Path(org["profile_file"]).read_text()
    with pytest.raises(sfkeep.ConfigError) as e:
        sfkeep.TokenManager.from_profile("prod", config=org["profile_file"])
    assert "no profile `prod`" in str(e.value) and "`fake`" in str(e.value), str(e.value)
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(sfkeep.ConfigError, match="does not exist"):
        sfkeep.TokenManager.from_profile("fake", config=missing)
    secret_line = next(line for line in text.splitlines() if line.startswith("client_secret"))
    literal = tmp_path / "literal.toml"
    literal.write_text(text.replace(secret_line, 'client_secret = "SuperSecret123"'))
    with pytest.raises(sfkeep.ConfigError) as e:
        sfkeep.TokenManager.from_profile("fake", config=literal)
    captured.add(e.value)
    assert "profiles.fake.client_secret" in str(e.value) and "{ env = " in str(e.value), str(e.value)
    assert "SuperSecret123" not in str(e.value) + repr(e.value)
    broken = tmp_path / "broken.toml"
    broken.write_text(text.replace(secret_line, "client_secret = SuperSecret123"))
    with pytest.raises(sfkeep.ConfigError) as e:
        sfkeep.TokenManager.from_profile("fake", config=broken)
    assert "not valid TOML" in str(e.value) and "SuperSecret123" not in str(e.value), str(e.value)
    unset = tmp_path / "unset.toml"
    unset.write_text(text.replace(secret_line, 'client_secret = { env = "SFKEEP_TEST_SURELY_UNSET" }'))
    with pytest.raises(sfkeep.ConfigError, match="SFKEEP_TEST_SURELY_UNSET, which is not set"):
        sfkeep.TokenManager.from_profile("fake", config=unset)
    jwt_only = tmp_path / "jwt.toml"
    jwt_line = next(line for line in text.splitlines() if line.startswith("jwt_key"))
    jwt_only.write_text(text.replace('grant = "refresh_token"', 'grant = "jwt_bearer"').replace(jwt_line + "\n", ""))
    with pytest.raises(sfkeep.ConfigError, match="needs `jwt_key`"):
        sfkeep.TokenManager.from_profile("fake", config=jwt_only)
    # A store the profile's key cannot read names the store, not a silent new login.
    m = sfkeep.TokenManager.from_profile("fake", config=org["profile_file"])
    m.token()
    other_key = tmp_path / "other.key"
    other_key.write_text("A" * 43 + "=")
    key_line = next(line for line in text.splitlines() if line.startswith("key_file"))
    wrong = tmp_path / "wrong_key.toml"
    wrong.write_text(text.replace(key_line, f'key_file = "{other_key}"'))
    before = org.token_requests()
    with pytest.raises(sfkeep.StoreUnavailable) as e:
        sfkeep.TokenManager.from_profile("fake", config=wrong)
    captured.add(e.value)
    assert "tokens.enc" in str(e.value), str(e.value)
    assert org.token_requests() == before


def test_from_profile_never_presents_a_refresh_token_the_cli_saw_rotated_away(org, cli_env, captured):
    """Under rotation the store holds the only valid refresh token. The CLI's first refresh
    rotates the configured one away and writes that in its spent-token ledger; when the store
    file is lost, a Python process of the profile reads the same ledger (``sfkeep::paths``),
    does not present the spent token (the org would revoke the whole family), and heals through
    the profile's JWT fallback (docs/rotation-safety.md)."""
    import tomllib

    org.admin("PUT", f"/apps/{org['client_id']}/policy", {"rotate_refresh_tokens": True})
    cli(org, cli_env, "api", "GET", "limits")
    assert org.stats()["token_requests"]["refresh_token"] == 1
    profile = tomllib.loads(Path(org["profile_file"]).read_text())["profiles"]["fake"]
    store = Path(profile["store"]["path"])
    ledger = store.parent / "spent-refresh-tokens.json"
    assert ledger.exists(), "the CLI's ledger beside its file store"
    assert org["refresh_token"] not in ledger.read_text()
    store.unlink()

    m = sfkeep.TokenManager.from_profile("fake", config=org["profile_file"])
    captured.add(m, m.status())
    t = m.token()
    assert t.instance_url == org["instance_url"]
    s = org.stats()
    assert s["refresh_token_reuse_detected"] == 0, s
    assert s["token_requests"]["refresh_token"] == 1, s["token_requests"]
    assert s["token_requests"]["jwt_bearer"] == 1, s["token_requests"]


def test_from_profile_honours_the_kill_switch_of_logout_revoke(org, cli_env, captured):
    """``sfkeep logout --revoke`` revokes the profile's tokens and disables its fallback grant
    (a marker file beside the audit log) until ``sfkeep login``/``recover``. A Python manager of
    the profile must not log straight back in with the JWT fallback either: no jwt_bearer
    request reaches the org, and the error says why. After ``sfkeep recover`` it works again."""
    m = sfkeep.TokenManager.from_profile("fake", config=org["profile_file"])
    captured.add(m, m.status())
    m.token()
    before = org.stats()["token_requests"]
    r = subprocess.run([sfkeep_bin(), "--config", str(org["profile_file"]), "--profile", "fake",
                        "logout", "--revoke"], env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr

    with pytest.raises(sfkeep.ReauthRequired) as e:
        fresh = sfkeep.TokenManager.from_profile("fake", config=org["profile_file"])
        captured.add(fresh, fresh.status())
        fresh.token()
    assert "logout --revoke" in str(e.value), str(e.value)
    after = org.stats()["token_requests"]
    assert after["jwt_bearer"] == before["jwt_bearer"], after

    # A person re-authorizes: the fallback is enabled again, and the Python manager works.
    r = subprocess.run([sfkeep_bin(), "--config", str(org["profile_file"]), "--profile", "fake",
                        "login", "--jwt"], env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    again = sfkeep.TokenManager.from_profile("fake", config=org["profile_file"])
    captured.add(again, again.status())
    assert again.token().instance_url == org["instance_url"]
