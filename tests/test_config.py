"""Config and rule files: valid ones load, broken ones report every problem with file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailhook._units import parse_duration, parse_size
from tailhook.config import ConfigError, FieldConfig, FileSourceConfig, WebhookUrl, load_config, load_rules
from tailhook.events import Mentions, Severity, Style
from tests.conftest import WriteFile

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "fakeToken_" + "x" * 58
URL = f"https://discord.com/api/webhooks/112233445566778899/{TOKEN}"

MINIMAL = """
    state_dir: state
    sources:
      - name: app
        paths: ["logs/*.log"]
    rules:
      paths: ["rules/*.yaml"]
"""
RULE = """
    rules:
      - name: ssh
        match: 'Failed password for (?P<user>\\S+) from (?P<ip>\\S+)'
        severity: P1
        key: '{ip}'
        title: 'SSH failure for {user} on {host}'
"""


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("60s", 60), ("10m", 600), ("1h", 3600), ("1.5s", 1.5), ("2d", 172800)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "size"), [("256MiB", 256 << 20), ("64KiB", 65536), ("1GB", 10**9), ("10B", 10)])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", [60, "60", "ten seconds", "5 fortnights", True])
def test_bad_durations_say_how_to_write_one(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_minimal_config_loads_with_defaults(write: WriteFile, tmp_path: Path) -> None:
    config_path = write("tailhook.yaml", MINIMAL)
    write("rules/ssh.yaml", RULE)
    config = load_config(config_path)

    assert config.state_dir == tmp_path / "state"
    (source,) = config.sources
    assert isinstance(source, FileSourceConfig)
    assert source.paths == (str(tmp_path / "logs/*.log"),)
    assert source.start_at == "end"
    (rule,) = config.rules
    assert (rule.name, rule.severity, rule.key, rule.line) == ("ssh", Severity.ERROR, "{ip}", 2)
    assert config.destinations == {}
    assert config.routes == ()
    assert (config.storm.window, config.storm.max_per_window, config.storm.digest) == (60.0, 3, True)
    assert (config.spool.max_bytes, config.spool.max_age) == (256 << 20, None)


def test_spool_limits(write: WriteFile) -> None:
    write("rules/ssh.yaml", RULE)
    config = load_config(write("tailhook.yaml", MINIMAL + "    spool: {max_bytes: 16MiB, max_age: 2d}\n"))
    assert (config.spool.max_bytes, config.spool.max_age) == (16 << 20, 2 * 86400)
    bad = write("bad.yaml", MINIMAL + "    spool: {max_age: 0s}\n")
    assert problems_of(bad) == [f"{bad}:7: spool.max_age: must be longer than zero"]


def test_environment_variables_and_url_file(write: WriteFile, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_ROOT", "/srv/logs")
    monkeypatch.setenv("HOOK", URL)
    write("secret.url", URL + "\n")
    config_path = write(
        "tailhook.yaml",
        """
        sources:
          - {name: app, paths: ["${LOG_ROOT}/*.log", "${MISSING_DIR:-/var/log}/app.log"]}
        destinations:
          alerts: {url: "${HOOK}", username: ops-bot}
          audit: {url_file: secret.url}
        routes:
          - {severities: [critical, error], to: alerts, continue: true}
          - {to: audit, style: compact, mention: {roles: ["123456789012345678"]}}
        """,
    )
    config = load_config(config_path)

    assert config.sources[0].paths == ("/srv/logs/*.log", "/var/log/app.log")  # type: ignore[union-attr]
    assert config.destinations["alerts"].urls[0].reveal() == URL
    assert config.destinations["audit"].urls[0].reveal() == URL
    first, second = config.routes
    assert first.severities == {Severity.CRITICAL, Severity.ERROR} and first.continue_
    assert second.style is Style.COMPACT and second.mentions.roles == ("123456789012345678",)


def test_three_mistakes_are_all_reported_with_file_line_and_key(write: WriteFile) -> None:
    config_path = write(
        "tailhook.yaml",
        """
        sources:
          - name: app
            paths: ["logs/*.log"]
            strat_at: end
        storm: {window: 60, max_per_window: 3}
        rules:
          paths: ["rules/*.yaml"]
        """,
    )
    rule_path = write(
        "rules/broken.yaml",
        """
        rules:
          - name: ssh
            match: 'Failed password for (?P<user>\\S+'
        """,
    )
    problems = problems_of(config_path)

    assert problems == [
        f"{config_path}:4: sources[0].strat_at: unknown key",
        f"{config_path}:5: storm.window: a duration must be a string with a unit, "
        "such as '500ms', '60s', '10m' or '1h'; got 60",
        f"{rule_path}:3: rules[0] (ssh).match: regex does not compile: "
        "missing ), unterminated subpattern at position 20",
    ]


def test_rule_problems(write: WriteFile) -> None:
    config_path = write("tailhook.yaml", MINIMAL)
    rules = write(
        "rules/r.yaml",
        """
        rules:
          - name: one
            match: 'user (?P<user>\\w+)'
            title: 'hello {usr}'
            severity: urgent
            sources: [nowhere]
          - name: one
            match: 'x'
            key: '{0}'
          - match: 'no name'
        """,
    )
    problems = problems_of(config_path)

    assert f"{rules}:4: rules[0] (one).title: {{usr}} is neither a named capture of match nor one of: " in problems[0]
    assert any(f"{rules}:5: rules[0] (one).severity: unknown severity 'urgent'" in p for p in problems)
    assert f"{rules}:6: rules[0] (one).sources: no source is named 'nowhere'" in problems
    assert any(f"{rules}:9: rules[1] (one).key: template field {{0}} is not a name" in p for p in problems)
    assert f"{rules}:10: rules[2].name: is required" in problems
    assert any("rule 'one' is also defined in" in p for p in problems)


def test_yaml_syntax_error_names_the_line(write: WriteFile) -> None:
    config_path = write("tailhook.yaml", "sources:\n  - name: app\n    paths: [unclosed\n")
    (problem,) = problems_of(config_path)
    assert problem.startswith(f"{config_path}:") and "not valid YAML" in problem


def test_duplicate_keys_and_unset_variables(write: WriteFile) -> None:
    config_path = write(
        "tailhook.yaml",
        """
        sources:
          - {name: app, paths: ["${TAILHOOK_TEST_UNSET_VAR}/a.log"]}
        storm: {window: 10s}
        storm: {window: 20s}
        """,
    )
    problems = problems_of(config_path)
    assert (
        f"{config_path}:2: sources[0].paths: environment variable TAILHOOK_TEST_UNSET_VAR is not set" in (problems[0])
    )
    assert f"{config_path}:4: storm: given twice; the second would silently win" in problems


def test_destination_and_route_problems_never_show_the_token(write: WriteFile) -> None:
    config_path = write(
        "tailhook.yaml",
        f"""
        sources: [{{name: app, paths: [a.log]}}]
        destinations:
          plain: {{url: "http://discord.com/api/webhooks/1234567/{TOKEN}"}}
          broken: {{url: "https://example.com/hooks/{TOKEN}"}}
          both: {{url: "{URL}", url_file: x}}
          named: {{url: "{URL}", username: "My Discord Bot"}}
          nofile: {{url_file: missing.url}}
        routes:
          - {{to: nowhere}}
          - {{to: named, mention: {{everyone: true}}}}
        """,
    )
    problems = problems_of(config_path)
    text = "\n".join(problems)

    assert TOKEN not in text
    assert "destinations.plain.url: a webhook URL must use https" in text
    assert "destinations.broken.url: not a Discord webhook URL" in text
    assert "destinations.both: needs exactly one of url or url_file" in text
    assert "destinations.named.username: Discord refuses usernames containing 'discord'" in text
    assert "destinations.nofile.url_file: cannot read" in text
    assert "routes[0].to: no destination is named 'nowhere'" in text
    assert "routes[1].mention.everyone: only a route for critical alone may ping @everyone" in text


def test_destination_options_are_checked_and_secrets_stay_hidden(write: WriteFile) -> None:
    config_path = write(
        "tailhook.yaml",
        f"""
        sources: [{{name: app, paths: [a.log]}}]
        destinations:
          forum: {{url: "{URL}", thread_name: "{{title:d}}"}}
          forum2: {{url: "{URL}", thread_name: "{{title}} on {{hostname}}"}}
          both: {{url: "{URL}", thread_name: x, thread_id: "1234567890"}}
          many: {{url: ["{URL}", "{URL}"]}}
          quiet: {{url: "{URL}", suppress_notifications: [loud]}}
          proxied: {{url: "{URL}", proxy: "http://bob:pä€ss@proxy:3128"}}
          socks: {{url: "{URL}", proxy: "socks5://proxy:1080"}}
          channel: {{url: "{URL}", threads: per_incident, applied_tags: {{critical: ["111122223333444455"]}}}}
          tagged: {{url: "{URL}", thread_name: x, threads: each, applied_tags: {{loud: ["111122223333444455"]}}}}
          crowded: {{url: "{URL}", thread_name: x, applied_tags: {{info: [{", ".join(["111122223333444455"] * 6)}]}}}}
        routes:
          - {{hosts: [web-1], to: forum}}
          - {{hosts: web-2, to: forum}}
        """,
    )
    text = "\n".join(problems_of(config_path))

    assert TOKEN not in text and "€ss" not in text
    assert "destinations.forum.thread_name: template field {title:d} cannot format text" in text
    assert "destinations.forum2.thread_name: names hostname" in text
    assert "destinations.both" in text and "thread_id" in text and "thread_name" in text
    assert "destinations.many.url: names the same webhook twice" in text
    assert "destinations.quiet.suppress_notifications" in text
    assert "destinations.proxied.proxy: has a user name or password with characters outside latin-1" in text
    assert "destinations.socks.proxy: must be an http:// or https:// proxy URL" in text
    assert "destinations.channel.threads: is for a forum channel: needs thread_name" in text
    assert "destinations.channel.applied_tags: is for a forum channel: needs thread_name" in text
    assert "destinations.tagged.threads: must be one of per_message, per_incident" in text
    assert "destinations.tagged.applied_tags:" in text and "loud" in text
    assert "destinations.crowded.applied_tags: info: at most 5 tags (Discord's limit), not 6" in text
    assert "routes[" not in text  # hosts: a name or a list


def test_templates_must_format_text(write: WriteFile) -> None:
    rules = write("rules.yaml", """
        rules:
          - {name: a, match: 'X (?P<n>.*)', title: '{n:d}'}
          - {name: b, match: 'X (?P<n>.*)', title: '{n!x}'}
          - {name: c, match: 'X (?P<n>.*)', title: '{n:>8} {n!r}'}
        """)  # fmt: skip
    config_path = write("tailhook.yaml", f"sources: [{{name: app, paths: [a.log]}}]\nrules: {{paths: [{rules}]}}\n")
    problems = problems_of(config_path)

    assert any("rules[0] (a).title: template field {n:d} cannot format text" in p for p in problems)
    assert any("rules[1] (b).title" in p for p in problems)
    assert not any("rules[2]" in p for p in problems)


def test_a_proxy_password_is_not_in_the_repr(write: WriteFile) -> None:
    config_path = write(
        "tailhook.yaml",
        f"""
        sources: [{{name: app, paths: [a.log]}}]
        destinations: {{alerts: {{url: "{URL}", proxy: "http://bob:hunter2@proxy:3128"}}}}
        """,
    )
    config = load_config(config_path)
    assert config.destinations["alerts"].proxy == "http://bob:hunter2@proxy:3128"
    assert "hunter2" not in repr(config) and TOKEN not in repr(config)


def test_webhook_url_hides_its_token() -> None:
    url = WebhookUrl(URL)
    assert url.id == "112233445566778899"
    for shown in (str(url), repr(url), f"{url}", repr([url]), url.redacted):
        assert TOKEN not in shown
    assert url.reveal() == URL


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("discordapp.com", "discord.com"),
        ("canary.discordapp.com", "canary.discord.com"),
        ("ptb.discordapp.com.", "ptb.discord.com"),
        ("notdiscordapp.com", "notdiscordapp.com"),
    ],
)
def test_the_old_discordapp_host_becomes_discord_com_with_a_note(
    write: WriteFile, caplog: pytest.LogCaptureFixture, given: str, used: str
) -> None:
    """discordapp.com has its own, stricter rate limit: the same webhook is reached on discord.com."""
    config_path = write(
        "tailhook.yaml",
        f"""
        sources: [{{name: app, paths: [a.log]}}]
        destinations: {{alerts: {{url: "https://{given}/api/webhooks/112233445566778899/{TOKEN}"}}}}
        """,
    )
    (url,) = load_config(config_path).destinations["alerts"].urls
    assert url.reveal() == f"https://{used}/api/webhooks/112233445566778899/{TOKEN}"
    noted = (
        f"destinations.alerts.url: {given.rstrip('.')} is used as https://{used}/api/webhooks/112233445566778899/***"
    )
    assert (noted in caplog.text) == (given != used)
    assert TOKEN not in caplog.text


def test_the_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAILHOOK_LOG_DIR", raising=False)
    config = load_config(ROOT / "config.example.yaml")
    assert {s.name for s in config.sources} == {
        "auth", "system", "journal", "nginx", "nginx-access", "apache", "apache-access", "postgresql", "mysql"
    }  # fmt: skip
    assert len(config.rules) >= 9


def test_matching_settings(write: WriteFile) -> None:
    config_path = write(
        "tailhook.yaml",
        MINIMAL.replace(
            'paths: ["rules/*.yaml"]', 'paths: ["rules/*.yaml"]\n      engine: re2\n      line_budget: 250ms'
        ),
    )
    write("rules/r.yaml", RULE)
    matching = load_config(config_path).matching
    assert (matching.engine, matching.line_budget) == ("re2", 0.25)


def test_an_unknown_engine_is_a_problem(write: WriteFile) -> None:
    config_path = write(
        "tailhook.yaml", MINIMAL.replace('paths: ["rules/*.yaml"]', 'paths: ["rules/*.yaml"]\n      engine: pcre')
    )
    write("rules/r.yaml", RULE)
    assert problems_of(config_path) == [
        f"{config_path}:7: rules.engine: must be one of auto, hyperscan, re2, re, not 'pcre'"
    ]


# ── enabled, fields, to and mention in a rule ──────────────────────────────

WITH_DESTINATIONS = f"""
    sources:
      - {{name: app, paths: ["logs/*.log"]}}
      - {{name: events, paths: ["logs/*.json"], format: json}}
    destinations:
      alerts: {{url: "{URL}"}}
      security: {{url: "{URL}"}}
    rules:
      paths: ["rules/*.yaml"]
"""


def test_enabled_fields_to_and_mention_are_read(write: WriteFile) -> None:
    config_path = write("tailhook.yaml", WITH_DESTINATIONS)
    write(
        "rules/r.yaml",
        """
        rules:
          - name: ssh
            match: 'Failed password for (?P<user>\\S+) from (?P<ip>\\S+)'
            severity: critical
            enabled: false
            fields:
              - {name: runbook, value: 'https://wiki.example.com/ssh?ip={ip}'}
              - {name: '{user} on {host}', value: '{line}', inline: true}
            to: [security, alerts]
            mention: {roles: ["123456789012345678"], users: "876543210987654321", everyone: true}
          - name: plain
            match: 'x'
            to: security
            mention: {}
          - {name: bare, match: 'y'}
        """,
    )
    ssh, plain, bare = load_config(config_path).rules

    assert not ssh.enabled and plain.enabled and bare.enabled
    assert ssh.fields == (
        FieldConfig("runbook", "https://wiki.example.com/ssh?ip={ip}"),
        FieldConfig("{user} on {host}", "{line}", inline=True),
    )
    assert ssh.to == ("security", "alerts")
    assert ssh.mentions == Mentions(("123456789012345678",), ("876543210987654321",), everyone=True)
    assert (plain.to, plain.mentions) == (("security",), Mentions())  # mention: {} pings nobody
    assert (bare.fields, bare.to, bare.mentions) == ((), None, None)


def test_problems_of_enabled_fields_to_and_mention(write: WriteFile) -> None:
    config_path = write("tailhook.yaml", WITH_DESTINATIONS)
    rules = write(
        "rules/r.yaml",
        """
        rules:
          - name: one
            match: 'user (?P<user>\\w+)'
            enabled: maybe
            sources: [app]
            fields:
              - {name: who, value: '{usr}'}
              - {name: who}
              - {name: '{0}', value: v, inline: yes please, url: x}
              - just text
            to: [security, nowhere, security]
            mention: {roles: [abc], channel: x, everyone: true}
          - name: two
            match: 'x'
            fields: runbook
            to: []
          - name: parked
            match: '(unclosed'
            enabled: false
        """,
    )
    problems = problems_of(config_path)
    known = (
        "cluster, container, host, hostname, identifier, line, namespace, node, path, pid, pod, priority, rule, "
        "severity, source, stream, unit, user"
    )
    not_a_name = "template field {0} is not a name; use {line} or a named capture"
    unclosed = "regex does not compile: missing ), unterminated subpattern at position 0"

    assert problems == [
        f"{rules}:4: rules[0] (one).enabled: must be true or false, not str 'maybe'",
        f"{rules}:7: rules[0] (one).fields[0].value: {{usr}} is neither a named capture of match nor one of: {known}",
        f"{rules}:8: rules[0] (one).fields[1].value: is required",
        f"{rules}:9: rules[0] (one).fields[2].name: {not_a_name}",
        f"{rules}:9: rules[0] (one).fields[2].inline: must be true or false, not str 'yes please'",
        f"{rules}:9: rules[0] (one).fields[2].url: unknown key",
        f"{rules}:10: rules[0] (one).fields[3]: must be a mapping of keys to values, not str 'just text'",
        f"{rules}:11: rules[0] (one).to: no destination is named 'nowhere'",
        f"{rules}:11: rules[0] (one).to: names a destination twice",
        f"{rules}:12: rules[0] (one).mention.roles: 'abc' is not a Discord ID (a number of 17 to 20 digits)",
        f"{rules}:12: rules[0] (one).mention.channel: unknown key",
        f"{rules}:12: rules[0] (one).mention.everyone: only a rule of severity critical may ping @everyone",
        f"{rules}:15: rules[1] (two).fields: must be a list, not str 'runbook'",
        f"{rules}:16: rules[1] (two).to: must name at least one destination (or leave it out: the routes decide)",
        f"{rules}:18: rules[2] (parked).match: {unclosed}",
    ]


def test_a_rule_may_add_at_most_22_fields(write: WriteFile) -> None:
    config_path = write("tailhook.yaml", WITH_DESTINATIONS)
    items = "".join(f"\n      - {{name: f{i}, value: v}}" for i in range(23))
    rules = write("rules/r.yaml", f"rules:\n  - name: many\n    match: x\n    fields:{items}\n")
    assert problems_of(config_path) == [
        f"{rules}:4: rules[0] (many).fields: has 23 fields; a rule may add at most 22 "
        "(a Discord embed takes 25, and source, host and the captures need the rest)"
    ]
    write("rules/r.yaml", f"rules:\n  - name: many\n    match: x\n    fields:{items.rsplit(chr(10), 1)[0]}\n")
    assert len(load_config(config_path).rules[0].fields) == 22


def test_field_templates_of_a_json_source_rule_may_name_any_key(write: WriteFile) -> None:
    config_path = write("tailhook.yaml", WITH_DESTINATIONS)
    write("rules/r.yaml", "rules:\n  - {name: j, sources: [events], match: x, fields: [{name: s, value: '{svc}'}]}\n")
    assert load_config(config_path).rules[0].fields == (FieldConfig("s", "{svc}"),)


def test_without_destinations_a_rules_to_names_anything(write: WriteFile) -> None:
    config_path = write("tailhook.yaml", MINIMAL)  # every alert goes to the console
    write("rules/r.yaml", "rules:\n  - {name: r, match: x, to: somewhere}\n")
    assert load_config(config_path).rules[0].to == ("somewhere",)
    rules_file = write("alone.yaml", "rules:\n  - {name: r, match: x, to: somewhere}\n")
    assert load_rules([str(rules_file)], None)[0].to == ("somewhere",)
    with pytest.raises(ConfigError, match="no destination is named 'somewhere'"):
        load_rules([str(rules_file)], None, destinations=["alerts"])


def test_fleet_mode_reads_its_redis_name_and_password_and_keeps_them_secret(write: WriteFile, tmp_path: Path) -> None:
    secret = write("redis-password", "s3cret-pw\n")
    secret.chmod(0o600)
    config = load_config(str(write("tailhook.yaml", f"""
        sources: [{{name: app, paths: [a.log]}}]
        fleet: {{redis: "rediss://:inline-pw@redis.internal:6380/2", name: shop, password_file: {secret.name},
                 timeout: 100ms}}
        """)))  # fmt: skip
    fleet = config.fleet
    assert fleet is not None and (fleet.name, fleet.password, fleet.timeout) == ("shop", "s3cret-pw", 0.1)
    assert fleet.redacted() == "rediss://redis.internal:6380/2"
    assert "pw" not in repr(fleet)
    assert load_config(str(write("plain.yaml", "sources: [{name: app, paths: [a.log]}]\n"))).fleet is None

    bad = write("bad.yaml", """
        sources: [{name: app, paths: [a.log]}]
        fleet: {redis: "http://:leaked-pw@redis.internal", password: x, password_file: y}
        """)  # fmt: skip
    text = "\n".join(problems_of(bad))
    assert "fleet.redis: must be a redis:// or rediss:// URL with a host" in text
    assert "fleet.name: is required" in text
    assert "fleet.password_file: give password or password_file, not both" in text
    assert "leaked-pw" not in text


def test_fleet_mode_checks_its_ca_file_for_tls(write: WriteFile) -> None:
    ca = write("ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    config = load_config(str(write("tailhook.yaml", f"""
        sources: [{{name: app, paths: [a.log]}}]
        fleet: {{redis: "rediss://redis.internal:6380/0", name: shop, ca_file: {ca.name}}}
        """)))  # fmt: skip
    assert config.fleet is not None and config.fleet.ca_file == ca
    write("not-pem.txt", "hello")
    bad = write("bad.yaml", f"""
        sources: [{{name: app, paths: [a.log]}}]
        fleet: {{redis: "redis://redis.internal", name: shop, ca_file: {ca.name}}}
        other: {{}}
        """)  # fmt: skip
    assert "fleet.ca_file: needs a rediss:// URL (TLS)" in "\n".join(problems_of(bad))
    for name, problem in (("not-pem.txt", "holds no PEM certificate"), ("missing.pem", "cannot read")):
        wrong = write(f"wrong-{name}.yaml", f"""
            sources: [{{name: app, paths: [a.log]}}]
            fleet: {{redis: "rediss://redis.internal", name: shop, ca_file: {name}}}
            """)  # fmt: skip
        assert problem in "\n".join(problems_of(wrong))
