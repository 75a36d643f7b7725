"""Batch manifests: TOML, CSV and JSON Lines, defaults, item identity, and every problem at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagerelay.cli import main
from imagerelay.emulator import Emulator
from imagerelay.manifest import ManifestError, load_manifest
from imagerelay.relay import Relay
from imagerelay.settings import load_settings
from tests.images import RED, jpeg_bytes, write
from tests.keys import KEY_VARS


def _planner(test_keys: dict[str, str]) -> Relay:
    return Relay(load_settings("development"), keys=test_keys)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_toml_defaults_apply_and_metadata_tables_merge(tmp_path: Path) -> None:
    """[defaults] applies to every item, an item's own fields win, metadata tables merge key by key."""
    (tmp_path / "photos").mkdir()
    write(tmp_path / "photos", "coast.jpg", jpeg_bytes((64, 48), RED))
    path = _write(
        tmp_path / "week.toml",
        """
[defaults]
aspect_ratio = "4:5"
provider = "xai"
metadata = { campaign = "autumn" }

[[items]]
name = "monday-post"
prompt = "a lighthouse at dusk"
references = ["photos/coast.jpg"]
tags = ["week-48", "coast"]
metadata = { publish_on = 2026-11-30 }

[[items]]
prompt = "a red fox in snow"
aspect_ratio = "16:9"
n = 3
seed = 7
""",
    )
    manifest = load_manifest(path)
    first, second = manifest.items
    assert first.name == "monday-post"
    assert first.tags == ("week-48", "coast")
    assert first.request.aspect_ratio == "4:5"
    assert first.request.provider == "xai"
    assert first.request.references == (str(tmp_path / "photos" / "coast.jpg"),)
    assert first.request.metadata == {
        "publish_on": "2026-11-30",
        "campaign": "autumn",
        "name": "monday-post",
        "tags": ["week-48", "coast"],
    }
    assert (second.request.aspect_ratio, second.request.n, second.request.seed) == ("16:9", 3, 7)
    assert [i.position for i in manifest.items] == [1, 2]


def test_csv_columns_lists_extras_and_free_fields(tmp_path: Path) -> None:
    """CSV: `;`-separated references and tags, PROVIDER.FIELD columns as extras, meta.FIELD as metadata."""
    write(tmp_path, "a.jpg", jpeg_bytes((32, 32), RED))
    write(tmp_path, "b.jpg", jpeg_bytes((40, 32), RED))
    path = _write(
        tmp_path / "catalogue.csv",
        "prompt,references,n,size,seed,provider,name,tags,replicate.go_fast,meta.sku\n"
        '"a mug, on oak",a.jpg; b.jpg,2,1024x1024,11,,mug,kitchen;new,false,MUG-01\n'
        "\n"
        "a teapot,,,,,,,,,TEA-02\n",
    )
    mug, teapot = load_manifest(path).items
    assert mug.request.prompt == "a mug, on oak"
    assert mug.request.references == (str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg"))
    assert (mug.request.n, mug.request.size, mug.request.seed) == (2, "1024x1024", 11)
    assert mug.request.extras == {"replicate": {"go_fast": False}}
    assert mug.request.metadata == {"sku": "MUG-01", "name": "mug", "tags": ["kitchen", "new"]}
    assert mug.where == "line 2"
    assert teapot.where == "line 4"
    assert (teapot.request.n, teapot.request.provider) == (1, "auto")


def test_jsonl_defaults_line(tmp_path: Path) -> None:
    """JSON Lines: a first line {"defaults": {...}} applies to every item that follows."""
    path = _write(
        tmp_path / "set.jsonl",
        '{"defaults": {"aspect_ratio": "1:1", "tags": ["set-a"]}}\n'
        '{"prompt": "a cube", "metadata": {"shot": 1}}\n'
        "\n"
        '{"prompt": "a sphere", "aspect_ratio": "3:2"}\n',
    )
    cube, sphere = load_manifest(path).items
    assert cube.request.aspect_ratio == "1:1"
    assert cube.request.metadata == {"shot": 1, "tags": ["set-a"]}
    assert sphere.request.aspect_ratio == "3:2"
    assert sphere.where == "line 4"


def test_every_bad_item_is_listed_with_its_line(tmp_path: Path, test_keys: dict[str, str]) -> None:
    """One pass reports every bad item of a CSV by line, each with its own problem."""
    write(tmp_path, "ok.jpg", jpeg_bytes((32, 32), RED))
    (tmp_path / "notimage.jpg").write_bytes(b"this is text")
    path = _write(
        tmp_path / "bad.csv",
        "prompt,references,n,size,provider,name\n"
        "fine,ok.jpg,1,,,a\n"  # line 2: good
        ",,,,,\n"  # blank: skipped
        "no file,missing.jpg,,,,\n"  # line 4
        "text file,notimage.jpg,,,,\n"  # line 5
        "too many,,20,,,\n"  # line 6
        "bad size,,,12x12,,\n"  # line 7
        "unknown provider,,,,midjourney,\n"  # line 8
        "unknown model,,,,xai:grok-9,\n"  # line 9
        "duplicate,,,,,a\n"  # line 10
        "n not a number,,three,,,\n",  # line 11
    )
    with pytest.raises(ManifestError) as info:
        load_manifest(path, plan=_planner(test_keys).plan)
    problems = info.value.problems
    assert [p.split(":", 1)[0] for p in problems] == [f"line {n}" for n in (4, 5, 6, 7, 8, 9, 10, 11)]
    text = "\n".join(problems)
    assert "missing.jpg' not found" in text
    assert "notimage.jpg' is not an image" in text
    assert "n must be between 1 and 10" in text
    assert "out of range" in text
    assert "unknown provider 'midjourney'" in text
    assert "unknown model 'grok-9'" in text
    assert "also used by line 2" in text
    assert "n: " in problems[-1]
    assert "8 bad item(s); nothing was sent" in str(info.value)


def test_toml_problems_name_the_item_and_its_line(tmp_path: Path) -> None:
    """TOML items are named by index (and the line of their [[items]] header)."""
    path = _write(
        tmp_path / "bad.toml",
        '[[items]]\nprompt = "fine"\n\n[[items]]\nsize = "1024x1024"\n\n[[items]]\nprompt = "x"\nn = 0\n',
    )
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert info.value.problems == [
        "item 2 (line 4): the prompt is missing: say what the image should show",
        "item 3 (line 7): n must be between 1 and 10: split the item into several items for more",
    ]


def test_item_without_a_serving_model_is_rejected(tmp_path: Path) -> None:
    """An item no configured model can serve (here: no key at all) is caught by the planner check."""
    path = _write(tmp_path / "m.jsonl", '{"prompt": "a fox"}\n')
    relay = Relay(load_settings("development"), keys={})
    with pytest.raises(ManifestError) as info:
        load_manifest(path, plan=relay.plan)
    assert "line 1: no model can serve this item" in info.value.problems[0]
    assert "no key: set XAI_API_KEY" in info.value.problems[0]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("broken.toml", "[[items]\nprompt = 1", "is not valid TOML"),
        ("broken.jsonl", '{"prompt": "a"\n', "line 1: not valid JSON"),
        ("empty.csv", "", "has no items"),
        ("noprompt.csv", "title,n\nx,1\n", "no 'prompt' column"),
        ("wide.csv", "prompt\na,b\n", "line 2: has 2 cells but the header names 1 columns"),
        ("m.txt", "prompt = 'x'", "unknown format (.txt)"),
        ("late.jsonl", '{"prompt": "a"}\n{"defaults": {"n": 2}}\n', "defaults go on the first line"),
        ("table.toml", "items = 3", "`items` must be an array of tables"),
        ("quote.csv", 'name,prompt\na,"a fox\nb,x\n', 'line 2: a quote (") opened here is never closed'),
        ("meta.csv", "prompt,meta.\na,1\n", "column 'meta.' names no field: write meta.FIELD"),
    ],
)
def test_unreadable_manifests_say_what_to_fix(tmp_path: Path, name: str, text: str, expected: str) -> None:
    """Broken TOML, JSON or CSV, or an unknown format, is one ManifestError naming the problem."""
    with pytest.raises(ManifestError) as info:
        load_manifest(_write(tmp_path / name, text))
    assert expected in str(info.value)


def test_missing_and_directory_manifests(tmp_path: Path) -> None:
    """A missing manifest or a directory is named plainly."""
    with pytest.raises(ManifestError, match="not found: check the path"):
        load_manifest(tmp_path / "nope.toml")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(ManifestError, match="is a directory"):
        load_manifest(tmp_path / "dir.csv")
    with pytest.raises(ManifestError, match=r"is a directory: pass a \.toml"):
        load_manifest(tmp_path)  # no suffix: still a directory, not an unknown format


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("m.toml", '[[items]]\nname = "real"\nprompt = "a"\nmetadata = { name = "clash" }\n'),
        ("m.jsonl", '{"prompt": "a", "tags": ["t"], "metadata": {"tags": "mine"}}\n'),
        ("m.csv", "name,prompt,meta.name\nreal,a,clash\n"),
    ],
)
def test_a_metadata_field_named_like_the_items_own_is_refused(tmp_path: Path, name: str, text: str) -> None:
    """metadata `name` or `tags` would be overwritten by (or mistaken for) the item's own: refused."""
    with pytest.raises(ManifestError) as info:
        load_manifest(_write(tmp_path / name, text))
    assert "is the item's own" in str(info.value)
    assert "rename the metadata field" in str(info.value)


def test_keys_survive_reordering_and_insertion(tmp_path: Path) -> None:
    """An item's key depends on its content, not its position: inserting items changes no other key."""
    before = load_manifest(_write(tmp_path / "m.jsonl", '{"prompt": "a"}\n{"prompt": "b"}\n'))
    after = load_manifest(
        _write(
            tmp_path / "m.jsonl",
            '{"prompt": "new"}\n{"prompt": "b"}\n{"prompt": "a", "n": 3, "metadata": {"x": 1}}\n',
        )
    )
    keys = {i.request.prompt: i.key for i in after.items}
    assert keys["a"] == before.items[0].key  # n and free fields are not part of the identity
    assert keys["b"] == before.items[1].key
    assert keys["new"] not in {i.key for i in before.items}


def test_identical_items_are_told_apart_and_content_changes_the_key(tmp_path: Path) -> None:
    """Two identical unnamed items get two keys; a changed prompt, seed or reference is a new item."""
    ref = write(tmp_path, "r.jpg", jpeg_bytes((32, 32), RED))
    twins = load_manifest(_write(tmp_path / "t.jsonl", '{"prompt": "a"}\n{"prompt": "a"}\n'))
    assert len({i.key for i in twins.items}) == 2
    base = load_manifest(_write(tmp_path / "m.jsonl", '{"prompt": "a", "references": ["r.jpg"]}\n'))
    seeded = load_manifest(
        _write(tmp_path / "m.jsonl", '{"prompt": "a", "references": ["r.jpg"], "seed": 1}\n')
    )
    ref.write_bytes(jpeg_bytes((48, 32), RED))
    redrawn = load_manifest(_write(tmp_path / "m.jsonl", '{"prompt": "a", "references": ["r.jpg"]}\n'))
    assert len({base.items[0].key, seeded.items[0].key, redrawn.items[0].key}) == 3


def test_cli_rejects_bad_manifest_before_any_request(
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    test_keys: dict[str, str],
) -> None:
    """`imagerelay batch` with bad items exits 2, lists each, sends nothing and writes no ledger."""
    monkeypatch.chdir(tmp_path)
    for p, var in KEY_VARS.items():
        monkeypatch.setenv(f"IMAGERELAY_PROVIDERS__{p.upper()}__BASE_URL", emulator.base_url(p))
        monkeypatch.setenv(var, test_keys[p])
    path = _write(
        tmp_path / "m.jsonl",
        '{"prompt": "good"}\n'
        '{"prompt": "x", "references": ["gone.png"]}\n'
        '{"prompt": "y", "provider": "zz"}\n',
    )
    monkeypatch.setattr("sys.argv", ["imagerelay", "batch", str(path), "--out", "out", "--json"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2
    assert "line 2: reference 1" in err
    assert "line 3: unknown provider 'zz'" in err
    assert "Traceback" not in err
    assert json.loads(out)["exit_code"] == 2
    assert emulator.requests == []
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("m.toml", '[[items]]\nprompt = "a"\nrefrences = ["r.jpg"]\n', "(did you mean 'references'?)"),
        ("m.toml", '[[items]]\nprompt = "a"\naspect_ration = "4:5"\n', "(did you mean 'aspect_ratio'?)"),
        ("m.jsonl", '{"prompt": "a", "seeds": 3}\n', "unknown field 'seeds' (did you mean 'seed'?)"),
        ("m.jsonl", '{"prompt": "a", "publish_on": "2026-11-30"}\n', "in the item's metadata table"),
        ("m.toml", '[defaults]\nrefernces = ["r.jpg"]\n[[items]]\nprompt = "a"\n', "defaults: unknown"),
        ("m.csv", "prompt,Aspect Ratio\na,4:5\n", "column 'Aspect Ratio' (did you mean 'aspect_ratio'?)"),
        ("m.csv", "prompt,Reference\na,r.jpg\n", "column 'Reference' (did you mean 'references'?)"),
        ("m.csv", "prompt,publish_on\na,2026-11-30\n", "name free-form data meta.publish_on"),
    ],
)
def test_an_unknown_item_field_is_refused_with_the_nearest_name(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    """A misspelt item field, default or CSV column is refused (did-you-mean, or where free-form
    data goes) instead of being kept as metadata while the image is made without it."""
    write(tmp_path, "r.jpg", jpeg_bytes((32, 32), RED))
    with pytest.raises(ManifestError) as info:
        load_manifest(_write(tmp_path / name, text))
    assert expected in str(info.value)
    assert "nothing was sent" in str(info.value)


def test_a_renamed_or_copied_manifest_keeps_its_item_keys(tmp_path: Path) -> None:
    """An item's key does not depend on the manifest's path: renamed or copied, it is the same item."""
    text = '{"prompt": "a", "name": "one"}\n{"prompt": "b"}\n'
    first = load_manifest(_write(tmp_path / "week48.jsonl", text))
    (tmp_path / "copy").mkdir()
    again = load_manifest(_write(tmp_path / "copy" / "week48-final.jsonl", text))
    assert [i.key for i in again.items] == [i.key for i in first.items]
