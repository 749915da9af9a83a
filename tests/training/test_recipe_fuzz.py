"""Fuzzed recipes (#16, item 7): every corruption of a real recipe either loads as a valid
`TrainConfig` or is one short line naming the file or the key; never another exception (a
traceback), never code run from the file.

The corruptions are seeded, so every run tries the same ones: wrong types in every field, unknown
keys at every level, sections replaced by scalars, YAML tags that build Python objects, alias
bombs, bytes that are not UTF-8, truncations and byte flips of the shipped recipes.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from squeezer.cli import main
from squeezer.sequences.recipe import SequenceTrainConfig, is_sequence_recipe, load_sequence_recipe
from squeezer.structured import from_mapping, to_mapping
from squeezer.training.recipe import TrainConfig, find_recipe, load_recipe, packaged_recipes
from tests.conftest import assert_one_line_error

REPO = Path(__file__).parents[2]
RECIPES = sorted(packaged_recipes().values())
# What `squeezer.cli.main` prints as `squeezer VERB: error: ...` (it also catches RuntimeError,
# which nothing in a recipe should ever raise).
USER_ERRORS = (ValueError, FileNotFoundError)
MARKER = "PWNED"  # what the code-running payloads would create

# Values of the wrong type for some field or other: containers, text for numbers, numbers for
# text and Literals, null, a bool, a 64-bit overflow, a float overflow, NaN, infinity, negatives.
WRONG_VALUES: list[Any] = [
    [1, 2], {"a": 1}, "abc", 7, None, True, 10**30, 10**400, math.nan, -math.inf, -1.5, "",
]  # fmt: skip


def _tree(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _leaves(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Key paths of every scalar in a recipe, list items included."""
    if isinstance(node, dict):
        return [leaf for key, value in node.items() for leaf in _leaves(value, (*prefix, key))]
    if isinstance(node, list):
        return [leaf for i, value in enumerate(node) for leaf in _leaves(value, (*prefix, i))]
    return [prefix]


def _dotted(path: tuple) -> str:
    """A key path as messages name it: optim.betas[0]."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _replaced(tree: dict, path: tuple, value: Any) -> dict:
    tree = copy.deepcopy(tree)
    node = tree
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return tree


def _sections(tree: dict) -> list[str]:
    return [key for key, value in tree.items() if isinstance(value, dict)]


def _outcome(path: Path, overrides: list[str] | None = None) -> TrainConfig | Exception:
    """The loader's config (`squeezer train` reads a recipe with `task:` as a sequence task's),
    or the user error it raised; anything else fails the test."""
    try:
        if is_sequence_recipe(path):
            return load_sequence_recipe(path, overrides)
        return load_recipe(path, overrides)
    except USER_ERRORS as error:
        return error


def _check(outcome: TrainConfig | Exception, *names: str) -> None:
    """A valid config, or one short line that holds each of `names` (the file, a key)."""
    if isinstance(outcome, TrainConfig | SequenceTrainConfig):
        # Every value has its field's type and passes its checks: building it again from plain
        # data re-checks them all (and NaN, never equal to itself, would fail the comparison).
        assert from_mapping(type(outcome), to_mapping(outcome)) == outcome
        return
    assert_one_line_error(str(outcome), *names)


def _error(outcome: TrainConfig | Exception, *names: str) -> str:
    assert isinstance(outcome, USER_ERRORS), f"expected an error naming {names}, got a config"
    _check(outcome, *names)
    return str(outcome)


@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> Iterator[Path]:
    """A working folder of its own, checked afterwards for the payloads' marker file."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    assert not list(tmp_path.rglob(MARKER)), "a recipe ran code"


# -- every field, every wrong type -------------------------------------------------------------

FIELD_CASES = [(recipe, leaf) for recipe in RECIPES for leaf in _leaves(_tree(recipe))]


def _wrong_values(recipe: Path, leaf: tuple) -> list[Any]:
    """A list, a mapping and four of the other wrong values, drawn per field (seeded): each
    kind still lands in dozens of fields, at a third of the cost of all of them everywhere."""
    rng = random.Random(f"{recipe.stem}:{_dotted(leaf)}")
    return [*WRONG_VALUES[:2], *rng.sample(WRONG_VALUES[2:], 4)]


@pytest.mark.parametrize(
    "recipe, leaf", FIELD_CASES, ids=[f"{r.stem}:{_dotted(leaf)}" for r, leaf in FIELD_CASES]
)
def test_a_field_of_the_wrong_type(sandbox, recipe, leaf):
    tree, path = _tree(recipe), sandbox / "r.yaml"
    for value in _wrong_values(recipe, leaf):
        path.write_text(yaml.safe_dump(_replaced(tree, leaf, value), sort_keys=False))
        outcome = _outcome(path)
        if isinstance(value, list | dict):  # never a scalar setting: the error names the field
            _error(outcome, f"{path}: ", _dotted(leaf))
        else:
            _check(outcome, f"{path}: ")


def test_the_wrong_types_are_refused_where_they_do_not_fit(sandbox):
    """Not every wrong value may load: text for a number, NaN and overflows never do."""
    tree, path = _tree(find_recipe("demo/squeezeformer")), sandbox / "r.yaml"
    for leaf in [("optim", "peak_lr"), ("run", "max_steps"), ("encoder", "d_model")]:
        for value in ["abc", math.nan, math.inf, 10**400, [1], True]:
            path.write_text(yaml.safe_dump(_replaced(tree, leaf, value)))
            _error(_outcome(path), f"{path}: ", _dotted(leaf))
    for value, shown in [(10**30, "too large"), (10**400, "an integer of 1329 bits")]:
        path.write_text(yaml.safe_dump(_replaced(tree, ("run", "seed"), value)))
        assert shown in _error(_outcome(path), "run.seed")


# -- unknown keys, sections that are not mappings ----------------------------------------------

UNKNOWN_CASES = [
    (recipe, section) for recipe in RECIPES for section in ["", *_sections(_tree(recipe))]
]


@pytest.mark.parametrize(
    "recipe, section",
    UNKNOWN_CASES,
    ids=[f"{r.stem}:{s or 'top'}" for r, s in UNKNOWN_CASES],
)
def test_an_unknown_key_is_named(sandbox, recipe, section):
    tree, path = _tree(recipe), sandbox / "r.yaml"
    node = tree[section] if section else tree
    node["bogus_key"] = 1
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    _error(_outcome(path), f"{path}: ", f"{section}.bogus_key" if section else "bogus_key")
    for key in [1, None, True, 2.5]:  # keys that are not names at all
        tree = _tree(recipe)
        node = tree[section] if section else tree
        node[key] = "x"
        path.write_text(yaml.safe_dump(tree, sort_keys=False))
        _error(_outcome(path), f"{path}: {section or 'config'}: keys must be names")


SECTION_CASES = [(recipe, section) for recipe in RECIPES for section in _sections(_tree(recipe))]


@pytest.mark.parametrize(
    "recipe, section", SECTION_CASES, ids=[f"{r.stem}:{s}" for r, s in SECTION_CASES]
)
def test_a_section_that_is_not_a_mapping(sandbox, recipe, section):
    tree, path = _tree(recipe), sandbox / "r.yaml"
    for value in [5, "x", [1, 2], True, 2.5, [], None]:
        path.write_text(yaml.safe_dump(_replaced(tree, (section,), value), sort_keys=False))
        outcome = _outcome(path)
        if value is None:  # encoder, features, spec_augment may be null
            _check(outcome, f"{path}: ", section)
        else:
            _error(outcome, f"{path}: ", section)


# -- YAML that would build Python objects or run code --------------------------------------------

TAGS = [
    '!!python/object/apply:os.system ["touch PWNED"]',
    '!!python/object/new:os.system ["touch PWNED"]',
    '!!python/object/apply:subprocess.check_call [["touch", "PWNED"]]',
    "!!python/object:squeezer.training.recipe.TrainConfig {model: conformer-s}",
    "!!python/name:os.system",
    "!!python/module:os",
    "!!python/tuple [1, 2]",
    '!<tag:yaml.org,2002:python/object/apply:os.system> ["touch PWNED"]',
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!!timestamp 2001-12-14",
    "!!omap [{a: 1}]",
    "!!int abc",
    "!!bool maybe",
    "!!timestamp garbage",
    "!local-tag x",
]
PLACES = {
    "top-level value": "data: {train: t.jsonl.gz}\nmodel: TAG\n",
    "nested value": "data: {train: t.jsonl.gz}\noptim:\n  peak_lr: TAG\n",
    "section": "data: {train: t.jsonl.gz}\noptim: TAG\n",
    "list item": "data:\n  train: t.jsonl.gz\n  speed_perturb: [1.0, TAG]\n",
    "key": "data: {train: t.jsonl.gz}\n? TAG\n: 1\n",
    "document": "TAG\n",
}
TAG_CASES = [(tag, place) for tag in TAGS for place in PLACES]


@pytest.mark.parametrize("tag, place", TAG_CASES, ids=[f"{t.split()[0]}:{p}" for t, p in TAG_CASES])
def test_yaml_tags_are_data_or_errors_never_code(sandbox, tag, place):
    path = sandbox / "r.yaml"
    path.write_text(PLACES[place].replace("TAG", tag.replace("PWNED", str(sandbox / MARKER))))
    outcome = _outcome(path)
    if "python/" in tag:  # refused by the safe loader, whatever the place
        assert "not valid YAML" in _error(outcome, f"{path}: ")
    else:  # plain-data tags: a value of the wrong type, or refused
        _error(outcome, f"{path}: ")
    assert not (sandbox / MARKER).exists()


def test_a_tag_directive_does_not_reach_python_either(sandbox):
    path = sandbox / "r.yaml"
    path.write_text(
        "%TAG !py! tag:yaml.org,2002:python/\n---\n"
        f"data: {{train: t.jsonl.gz}}\nmodel: !py!object/apply:os.system ['touch {MARKER}']\n"
    )
    assert "not valid YAML" in _error(_outcome(path), f"{path}: ")


# -- aliases: bombs and cycles -----------------------------------------------------------------


def _bomb(width: int = 10, levels: int = 6) -> str:
    """A flow list whose last item is width**levels leaves through aliases: kept small (10**6),
    so that code expanding it costs a second, not the machine; the message length test catches
    that code all the same."""
    items = ["&l0 [" + ", ".join(["1.0"] * width) + "]"]
    for level in range(1, levels):
        items.append(f"&l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    return "[" + ", ".join(items) + "]"


ALIASES = {
    "bomb in a number": "data: {train: t.jsonl.gz}\noptim: {peak_lr: BOMB}\n",
    "bomb in a string": "data: {train: BOMB}\n",
    "bomb in a list of numbers": "data: {train: t.jsonl.gz, speed_perturb: BOMB}\n",
    "bomb as a section": "data: {train: t.jsonl.gz}\noptim: BOMB\n",
    "bomb as the document": "BOMB\n",
    "bomb in the encoder": "data: {train: t.jsonl.gz}\nencoder: {d_model: BOMB}\n",
    "mapping bomb": "a0: &m0 {x: 1, y: 1}\na1: &m1 {x: *m0, y: *m0}\noptim: {peak_lr: *m1}\n",
    "merged mapping": "data: &d {train: t.jsonl.gz}\noptim: {<<: *d}\n",
    "cyclic list": "data: {train: t.jsonl.gz, speed_perturb: &s [*s]}\n",
    "cyclic mapping": "data: {train: t.jsonl.gz}\noptim: &o {peak_lr: *o}\n",
    "cyclic document": "&top {data: *top}\n",
}


@pytest.mark.parametrize("name", list(ALIASES))
def test_aliases_are_never_expanded_into_a_message(sandbox, name):
    path = sandbox / "r.yaml"
    path.write_text(ALIASES[name].replace("BOMB", _bomb()))
    _error(_outcome(path), f"{path}: ")


# -- bytes: encodings, truncations, flips, odd documents -----------------------------------------


def _encodings(text: str) -> dict[str, bytes]:
    data = text.encode()
    middle = len(data) // 2
    return {
        "0xff 0xfe inside": data[:middle] + b"\xff\xfe" + data[middle:],
        "latin-1 comment": ("# réglages\n" + text).encode("latin-1"),
        "utf-16": text.encode("utf-16"),
        "lone continuation byte": b"\x80" + data,
        "overlong slash": data[:middle] + b"\xc0\xaf" + data[middle:],
        "NUL byte": data[:middle] + b"\x00" + data[middle:],
        "bell character": data[:middle] + b"\x07" + data[middle:],
        "utf-8 BOM": b"\xef\xbb\xbf" + data,  # valid: YAML skips it
    }


ENCODING_CASES = [(recipe, kind) for recipe in RECIPES for kind in _encodings("")]


@pytest.mark.parametrize(
    "recipe, kind", ENCODING_CASES, ids=[f"{r.stem}:{k}" for r, k in ENCODING_CASES]
)
def test_bytes_that_are_not_utf8_text(sandbox, recipe, kind):
    path = sandbox / "r.yaml"
    path.write_bytes(_encodings(recipe.read_text())[kind])
    outcome = _outcome(path)
    if kind == "utf-8 BOM":
        assert isinstance(outcome, TrainConfig | SequenceTrainConfig)
    else:
        _error(outcome, f"{path}: ")


def _truncations(data: bytes, rng: random.Random, count: int = 6) -> list[int]:
    return sorted({0, 1, len(data) - 1, *(rng.randrange(len(data)) for _ in range(count))})


TRUNCATION_CASES = [
    (recipe, size)
    for index, recipe in enumerate(RECIPES)
    for size in _truncations(recipe.read_bytes(), random.Random(index))
]


@pytest.mark.parametrize(
    "recipe, size", TRUNCATION_CASES, ids=[f"{r.stem}:{n}" for r, n in TRUNCATION_CASES]
)
def test_a_truncated_recipe(sandbox, recipe, size):
    path = sandbox / "r.yaml"
    path.write_bytes(recipe.read_bytes()[:size])
    _check(_outcome(path), f"{path}: ")


def _flipped(data: bytes, rng: random.Random) -> bytes:
    """`data` with one to three bytes changed: a flipped bit or a random byte."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(data))
        data[at] = data[at] ^ (1 << rng.randrange(8)) if rng.random() < 0.5 else rng.randrange(256)
    return bytes(data)


FLIP_CASES = [(recipe, seed) for recipe in RECIPES for seed in range(12)]


@pytest.mark.parametrize("recipe, seed", FLIP_CASES, ids=[f"{r.stem}:{s}" for r, s in FLIP_CASES])
def test_flipped_bytes(sandbox, recipe, seed):
    path = sandbox / "r.yaml"
    path.write_bytes(_flipped(recipe.read_bytes(), random.Random(f"{recipe.stem}-{seed}")))
    _check(_outcome(path), f"{path}: ")


DOCUMENTS = {
    "empty": "",
    "blank": "\n\n",
    "only a comment": "# nothing\n",
    "empty document": "---\n",
    "null": "~\n",
    "empty mapping": "{}\n",
    "empty list": "[]\n",
    "list": "- model: conformer-s\n- data: {train: t.jsonl.gz}\n",
    "number": "5\n",
    "string": "'a recipe'\n",
    "two documents": "data: {train: t.jsonl.gz}\n---\ndata: {train: u.jsonl.gz}\n",
    "tab indentation": "data:\n\ttrain: t.jsonl.gz\n",
    "unclosed list": "data: {train: t.jsonl.gz}\noptim: {betas: [0.9\n",
    "unclosed quote": 'data: {train: "t.jsonl.gz}\n',
    "undefined alias": "data: {train: *nowhere}\n",
    "unhashable key": "data: {train: t.jsonl.gz}\n? [a, b]\n: 1\n",
    "deeply nested list": "optim: {peak_lr: " + "[" * 1200 + "]" * 1200 + "}\n",
    "deeply nested mapping": "data: " + "{a: " * 1200 + "1" + "}" * 1200 + "\n",
    "5000-digit integer": "data: {train: t.jsonl.gz}\nrun: {seed: " + "9" * 5000 + "}\n",
    "6000-digit hex integer": "data: {train: t.jsonl.gz}\nrun: {seed: 0x" + "f" * 5000 + "}\n",
    "duplicate key": "data: {train: t.jsonl.gz}\nmodel: conformer-s\nmodel: 5\n",
    "betas of one": "data: {train: t.jsonl.gz}\noptim: {betas: [0.9]}\n",
    "key with a newline": 'data: {train: t.jsonl.gz}\n"bad\\nkey": 1\n',
    "a very long key": "data: {train: t.jsonl.gz}\n" + "k" * 10_000 + ": 1\n",
}  # fmt: skip


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_documents_that_are_not_recipes(sandbox, name):
    path = sandbox / "r.yaml"
    path.write_text(DOCUMENTS[name])
    _error(_outcome(path), f"{path}: ")


def test_a_recipe_that_is_not_a_file(sandbox):
    (sandbox / "folder.yaml").mkdir()
    _error(_outcome(sandbox / "folder.yaml"), "folder.yaml")
    _error(_outcome(sandbox / "missing.yaml"), "missing.yaml")


# -- values that used to load and only failed (or misbehaved) in training ------------------------

ACCEPTED_BEFORE = {
    "a one-item betas": ("optim: {betas: [0.9]}\n", "optim.betas: expected 2 items"),
    "a NaN learning rate": ("optim: {peak_lr: .nan}\n", "optim.peak_lr: expected a finite"),
    "an infinite duration": ("data: {max_duration: .inf}\n", "data.max_duration"),
    "a negative batch": ("data: {max_batch_seconds: -40}\n", "data.max_batch_seconds=-40.0"),
    "no warm-up": ("optim: {warmup_steps: 0}\n", "optim.warmup_steps=0"),
    "min_lr above peak_lr": ("optim: {min_lr: 1.0}\n", "optim.min_lr=1.0"),
    "zero checkpoints kept": ("run: {keep_last: 0}\n", "run.keep_last=0"),
    "a negative seed": ("run: {seed: -1}\n", "run.seed=-1"),
    "an unknown device": ("run: {device: gpu}\n", "run.device='gpu'"),
    "a zero speed factor": ("data: {speed_perturb: [0.0, 1.0]}\n", "data.speed_perturb"),
    "true for a Literal": ("run: {precision: true}\n", "run.precision"),
}


@pytest.mark.parametrize("name", list(ACCEPTED_BEFORE))
def test_settings_training_would_trip_on_are_refused_when_the_recipe_loads(sandbox, name):
    text, message = ACCEPTED_BEFORE[name]
    path = sandbox / "r.yaml"
    path.write_text("data: {train: t.jsonl.gz}\n" + text)
    assert message in _error(_outcome(path), f"{path}: ")


def test_manifest_paths_are_paths_not_yaml(tmp_path):
    """`: ` and ` #` in a folder name once turned the resolved path into a mapping or a comment
    (it went through `--set data.train=PATH`, which parses YAML)."""
    folder = tmp_path / "take: #2"
    folder.mkdir()
    path = folder / "r.yaml"
    path.write_text('model: conformer-s\ndata: {train: "my data: set #1/train.jsonl.gz"}\n')
    assert load_recipe(path).data.train == str(folder / "my data: set #1/train.jsonl.gz")


# -- --set overrides ---------------------------------------------------------------------------

OVERRIDES = [
    ("optim.peak_lr=abc", "optim.peak_lr"),
    ("optim.peak_lr=[1", "--set optim.peak_lr: not valid YAML"),
    ("optim.peak_lr=!!python/object/apply:os.system ['touch PWNED']", "--set optim.peak_lr"),
    ("model=!!python/name:os.system", "--set model"),
    ("model=!!binary aGk=", "model"),
    ("optim.peak_lr=" + "[" * 1200 + "]" * 1200, "--set optim.peak_lr: YAML nested too deeply"),
    ("optim.peak_lr=.nan", "optim.peak_lr"),
    ("optim.peak_lr=1e999", "optim.peak_lr"),
    ("optim.peak_lr=-1", "optim.peak_lr"),
    ("optim.peak_lr=1\n2", "optim.peak_lr"),
    ("run.max_steps=1.5", "run.max_steps"),
    ("run.seed=99999999999999999999999", "run.seed"),
    ("run.precision=fp16", "run.precision"),
    ("tokenizer.kind=7", "tokenizer.kind"),
    ("optim.betas=[0.9]", "optim.betas"),
    ("data.speed_perturb=[0, 1]", "data.speed_perturb"),
    ("data.train=", "data.train"),
    ("model=a\nb: c", "model"),
    ("optim=3", "optim"),
    ("optim.peak_lr.x=1", "cannot set optim.peak_lr.x: optim.peak_lr is 0.0015"),
    ("spec_augment.freq_masks=3", "cannot set spec_augment.freq_masks: spec_augment is None"),
    ("nothing=1", "nothing"),
    ("nothing.here=1", "nothing.here"),
    ("=1", "key.path=value"),
    ("no-equals-sign", "key.path=value"),
]


@pytest.mark.parametrize("override, name", OVERRIDES, ids=[o[:40] for o, _ in OVERRIDES])
def test_a_bad_override_names_its_key(sandbox, override, name):
    recipe = find_recipe("demo/squeezeformer")
    _error(_outcome(recipe, [override.replace("PWNED", str(sandbox / MARKER))]), name)


# -- through the command line ------------------------------------------------------------------

CLI_CASES = {
    "python tag": "model: !!python/object/apply:os.system ['touch PWNED']\n",
    "not UTF-8": b"model: conformer-s\n\xff\xfe\n",
    "a list": "- a\n- b\n",
    "a wrong type": "data: {train: t.jsonl.gz}\noptim: {peak_lr: abc}\n",
    "an unknown key": "data: {train: t.jsonl.gz}\noptim: {lr: 1}\n",
    "an alias bomb": "data: {train: t.jsonl.gz}\noptim: {peak_lr: " + _bomb() + "}\n",
    "broken YAML": "data: {train: t.jsonl.gz\n",
    "empty": "",
}


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_the_command_line_prints_one_line_and_exits_2(sandbox, capsys, name):
    path, out = sandbox / "r.yaml", sandbox / "run"
    content = CLI_CASES[name]
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content.replace("PWNED", str(sandbox / MARKER)))
    assert main(["train", str(path), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"squeezer train: error: {path}: "), lines
    assert captured.out == "" and not out.exists()


def test_a_bad_set_on_the_command_line(sandbox, capsys):
    recipe = find_recipe("demo/squeezeformer")
    argv = ["train", str(recipe), "--out", str(sandbox / "run"), "--set", "optim.peak_lr=[1"]
    assert main(argv) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [lines[0]] and lines[0].startswith("squeezer train: error: --set optim.")
