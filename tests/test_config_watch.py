"""ConfigWatch on the real filesystem with real inotify: what wakes it, what it ignores, and how often.

A test that something triggers nothing waits until the watch has looked at the files after
the change (``looks`` went up), then checks that it called no one.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tailhook.config_watch import ConfigWatch, WatchedPaths, fingerprint, folders_to_watch

pytestmark = pytest.mark.timeout(30)

RULE = "rules:\n  - {name: %s, match: '%s'}\n"


class Reloads:
    """The callback: records each call's changed files."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def __call__(self, changed: list[str]) -> None:
        self.calls.append(changed)


async def wait_for(condition: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def watching(watch: ConfigWatch) -> AsyncIterator[ConfigWatch]:
    """*watch* running, armed (it has looked once with its watches in place), cancelled after."""
    task = asyncio.create_task(watch.run())
    try:
        await wait_for(lambda: watch.looks >= 1 or task.done(), "the watch to start")
        assert not task.done(), task.exception()
        yield watch
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def looked_after(watch: ConfigWatch, change: Callable[[], object]) -> None:
    """Make *change* while the watch is idle, and wait until it has looked at the files after it."""
    before = watch.looks
    change()
    await wait_for(lambda: watch.looks > before, "the watch to look")


def layout(tmp_path: Path) -> tuple[Path, Path]:
    """``tailhook.yaml`` and ``rules.d/ssh.yaml``; the watch is over the config and ``rules.d/*.yaml``."""
    config = tmp_path / "tailhook.yaml"
    config.write_text("rules: {paths: ['rules.d/*.yaml']}\n")
    (tmp_path / "rules.d").mkdir()
    rules = tmp_path / "rules.d" / "ssh.yaml"
    rules.write_text(RULE % ("ssh", "Failed password"))
    return config, rules


def paths_of(config: Path, *globs: str) -> Callable[[], WatchedPaths]:
    return lambda: (str(config), tuple(str(config.parent / g) for g in globs))


def make_watch(config: Path, reloads: Reloads, *globs: str, **options: float) -> ConfigWatch:
    return ConfigWatch(paths_of(config, *(globs or ("rules.d/*.yaml",))), reloads, **options)  # type: ignore[arg-type]


# ── what triggers ───────────────────────────────────────────────────────────


async def test_an_edited_rule_file_triggers_one_call_naming_it(tmp_path: Path) -> None:
    config, rules = layout(tmp_path)
    reloads = Reloads()
    async with watching(make_watch(config, reloads)) as watch:
        rules.write_text(RULE % ("ssh", "Failed password for"))
        await wait_for(lambda: reloads.calls, "the call")
        await looked_after(watch, (tmp_path / "unrelated.txt").touch)
    assert reloads.calls == [[str(rules)]]


async def test_a_burst_of_writes_is_one_call(tmp_path: Path) -> None:
    config, rules = layout(tmp_path)
    reloads = Reloads()
    async with watching(make_watch(config, reloads, debounce_s=0.5, max_delay_s=2.0)) as watch:
        for n in range(5):
            rules.write_text(RULE % ("ssh", f"Failed password {n}"))
        await wait_for(lambda: reloads.calls, "the call")
        await looked_after(watch, (tmp_path / "unrelated.txt").touch)
    assert reloads.calls == [[str(rules)]]


async def test_an_edited_config_file_triggers(tmp_path: Path) -> None:
    config, _ = layout(tmp_path)
    reloads = Reloads()
    async with watching(make_watch(config, reloads)):
        config.write_text(config.read_text() + "storm: {window: 10s}\n")
        await wait_for(lambda: reloads.calls, "the call")
    assert reloads.calls == [[str(config)]]


async def test_a_new_file_matching_a_rule_glob_triggers(tmp_path: Path) -> None:
    config, _ = layout(tmp_path)
    reloads = Reloads()
    async with watching(make_watch(config, reloads)):
        new = tmp_path / "rules.d" / "nginx.yaml"
        new.write_text(RULE % ("nginx", "upstream timed out"))
        await wait_for(lambda: reloads.calls, "the call")
    assert reloads.calls == [[str(new)]]


async def test_a_deleted_rule_file_triggers(tmp_path: Path) -> None:
    config, rules = layout(tmp_path)
    reloads = Reloads()
    async with watching(make_watch(config, reloads)):
        rules.unlink()
        await wait_for(lambda: reloads.calls, "the call")
    assert reloads.calls == [[str(rules)]]


async def test_a_rule_file_named_without_a_glob_triggers_when_deleted_and_made_again(tmp_path: Path) -> None:
    config, rules = layout(tmp_path)
    reloads = Reloads()
    async with watching(make_watch(config, reloads, "rules.d/ssh.yaml")):
        rules.unlink()
        await wait_for(lambda: reloads.calls, "the call for the deletion")
        rules.write_text(RULE % ("ssh", "again"))
        await wait_for(lambda: len(reloads.calls) == 2, "the call for the new file")
    assert reloads.calls == [[str(rules)], [str(rules)]]


async def test_a_rule_folder_made_after_the_start_is_watched_once_it_exists(tmp_path: Path) -> None:
    config, _ = layout(tmp_path)
    reloads = Reloads()
    async with watching(make_watch(config, reloads, "later/conf.d/*.yaml")) as watch:
        (tmp_path / "later" / "conf.d").mkdir(parents=True)  # seen in tmp_path, the nearest existing folder
        await wait_for(lambda: str(tmp_path / "later" / "conf.d") in watch.watched, "the new folder to be watched")
        new = tmp_path / "later" / "conf.d" / "late.yaml"
        new.write_text(RULE % ("late", "late"))
        await wait_for(lambda: reloads.calls, "the call")
    assert reloads.calls == [[str(new)]]


# ── what does not ───────────────────────────────────────────────────────────


async def test_an_unrelated_file_in_the_same_folder_triggers_nothing(tmp_path: Path) -> None:
    config, rules = layout(tmp_path)
    reloads = Reloads()
    async with watching(make_watch(config, reloads)) as watch:
        await looked_after(watch, lambda: (tmp_path / "rules.d" / "README.md").write_text("not a rule file"))
        await looked_after(watch, lambda: (tmp_path / "app.log").write_text("a line\n"))
        assert reloads.calls == []
        rules.write_text(RULE % ("ssh", "changed"))  # and it still hears what matters
        await wait_for(lambda: reloads.calls, "the call")
    assert reloads.calls == [[str(rules)]]


async def test_a_touch_or_a_rewrite_with_the_same_content_triggers_nothing(tmp_path: Path) -> None:
    config, rules = layout(tmp_path)
    reloads = Reloads()
    async with watching(make_watch(config, reloads)) as watch:
        await looked_after(watch, lambda: os.utime(rules, ns=(1, 1)))
        await looked_after(watch, lambda: rules.write_text(rules.read_text()))
        await looked_after(watch, lambda: config.write_text(config.read_text()))
    assert reloads.calls == []


async def test_a_change_another_load_already_read_is_not_reported_again(tmp_path: Path) -> None:
    """As when SIGHUP reloads right after an edit: the watch's own reload would load the same files."""
    config, rules = layout(tmp_path)
    reloads = Reloads()
    async with watching(make_watch(config, reloads, debounce_s=1.0, max_delay_s=2.0)) as watch:
        before = watch.looks
        rules.write_text(RULE % ("ssh", "edited, then SIGHUP"))
        async with watch.loading():
            pass
        await wait_for(lambda: watch.looks > before, "the watch to look")
    assert reloads.calls == []


# ── following what the running config names ────────────────────────────────


async def test_a_reload_that_names_a_new_rule_folder_re_arms_on_it(tmp_path: Path) -> None:
    config, rules = layout(tmp_path)
    (tmp_path / "extra").mkdir()
    extra = tmp_path / "extra" / "more.yaml"
    globs = ["rules.d/*.yaml"]
    calls: list[list[str]] = []

    async def reload(changed: list[str]) -> None:  # as App.reload does: the files read count as loaded
        calls.append(changed)
        async with watch.loading():
            globs.append("extra/*.yaml")

    watch = ConfigWatch(lambda: (str(config), [str(tmp_path / g) for g in globs]), reload)
    async with watching(watch):
        rules.write_text(RULE % ("ssh", "now with extra rules"))
        await wait_for(lambda: calls, "the first call")
        await wait_for(lambda: str(tmp_path / "extra") in watch.watched, "the new folder to be watched")
        extra.write_text(RULE % ("more", "more"))  # tmp_path/extra is not below a folder watched before
        await wait_for(lambda: len(calls) == 2, "the call for the new folder's file")
    assert calls == [[str(rules)], [str(extra)]]


# ── Kubernetes ConfigMap and Secret volumes ─────────────────────────────────


def configmap(folder: Path, files: dict[str, str], version: int) -> None:
    """Lay out or update *folder* as the kubelet does a ConfigMap volume.

    ``name -> ..data/name`` links, ``..data -> ..<timestamp>``; an update writes a new
    timestamped folder, points ``..data_tmp`` at it, renames that over ``..data``, and removes the
    old folder.
    """
    folder.mkdir(exist_ok=True)
    stamped = f"..2026_11_29_10_00_{version:02d}.123456789"
    (folder / stamped).mkdir()
    for name, text in files.items():
        (folder / stamped / name).write_text(text)
    old = os.readlink(folder / "..data") if (folder / "..data").is_symlink() else None
    os.symlink(stamped, folder / "..data_tmp")
    os.rename(folder / "..data_tmp", folder / "..data")
    for name in files:
        if not (folder / name).is_symlink():
            os.symlink(f"..data/{name}", folder / name)
    if old is not None:
        shutil.rmtree(folder / old)


async def test_a_configmap_update_triggers_and_the_watch_follows_the_new_folder(tmp_path: Path) -> None:
    config = tmp_path / "tailhook.yaml"
    config.write_text("rules: {paths: ['rules/*.yaml']}\n")
    volume = tmp_path / "rules"
    configmap(volume, {"ssh.yaml": RULE % ("ssh", "v1"), "notes.txt": "v1"}, version=1)
    reloads = Reloads()
    async with watching(make_watch(config, reloads, "rules/*.yaml")) as watch:
        assert str(volume / "..2026_11_29_10_00_01.123456789") in watch.watched
        configmap(volume, {"ssh.yaml": RULE % ("ssh", "v2"), "notes.txt": "v1"}, version=2)
        await wait_for(lambda: reloads.calls, "the call for the update")
        assert reloads.calls == [[str(volume / "ssh.yaml")]]

        # An update of another key leaves the rule file's content as it was: nothing to reload.
        await looked_after(
            watch, lambda: configmap(volume, {"ssh.yaml": RULE % ("ssh", "v2"), "notes.txt": "v3"}, version=3)
        )
        assert reloads.calls == [[str(volume / "ssh.yaml")]]
        await wait_for(lambda: str(volume / "..2026_11_29_10_00_03.123456789") in watch.watched, "the new folder")

        # A key added to the ConfigMap is a new rule file.
        configmap(volume, {"ssh.yaml": RULE % ("ssh", "v2"), "notes.txt": "v3", "web.yaml": RULE % ("web", "5")}, 4)
        await wait_for(lambda: len(reloads.calls) == 2, "the call for the new key")
    assert reloads.calls[1] == [str(volume / "web.yaml")]


async def test_a_config_file_mounted_from_a_configmap_triggers(tmp_path: Path) -> None:
    volume = tmp_path / "etc"
    configmap(volume, {"tailhook.yaml": "storm: {window: 1m}\n"}, version=1)
    reloads = Reloads()
    async with watching(ConfigWatch(lambda: (str(volume / "tailhook.yaml"), ()), reloads)):
        configmap(volume, {"tailhook.yaml": "storm: {window: 2m}\n"}, version=2)
        await wait_for(lambda: reloads.calls, "the call")
    assert reloads.calls == [[str(volume / "tailhook.yaml")]]


def test_the_folders_watched_for_a_configmap_are_the_volume_and_the_current_data_folder(tmp_path: Path) -> None:
    configmap(tmp_path / "cm", {"rules.yaml": "rules: []\n"}, version=1)
    folders = folders_to_watch(str(tmp_path / "tailhook.yaml"), [str(tmp_path / "cm" / "*.yaml")])
    assert folders == {
        str(tmp_path): False,
        str(tmp_path / "cm"): False,
        str(tmp_path / "cm" / "..2026_11_29_10_00_01.123456789"): False,
    }


def test_a_double_star_glob_is_watched_recursively_from_its_base(tmp_path: Path) -> None:
    (tmp_path / "rules.d" / "team").mkdir(parents=True)
    folders = folders_to_watch(str(tmp_path / "tailhook.yaml"), [str(tmp_path / "rules.d" / "**" / "*.yaml")])
    assert folders == {str(tmp_path): False, str(tmp_path / "rules.d"): True}


def test_the_fingerprint_is_the_content_of_what_the_globs_match_now(tmp_path: Path) -> None:
    config, rules = layout(tmp_path)
    (tmp_path / "rules.d" / "notes.txt").write_text("not matched")
    first = fingerprint(str(config), [str(tmp_path / "rules.d" / "*.yaml"), str(tmp_path / "gone.yaml")])
    assert sorted(first) == sorted([str(config), str(rules), str(tmp_path / "gone.yaml")])
    assert first[str(tmp_path / "gone.yaml")] == "missing"
    os.utime(rules, ns=(5, 5))
    assert fingerprint(str(config), [str(tmp_path / "rules.d" / "*.yaml"), str(tmp_path / "gone.yaml")]) == first


# ── without inotify ─────────────────────────────────────────────────────────


async def test_polling_finds_an_edit_too(tmp_path: Path) -> None:
    config, rules = layout(tmp_path)
    reloads = Reloads()
    async with watching(make_watch(config, reloads, poll=True, poll_interval_s=0.05)):
        rules.write_text(RULE % ("ssh", "polled"))
        await wait_for(lambda: reloads.calls, "the call")
    assert reloads.calls == [[str(rules)]]
