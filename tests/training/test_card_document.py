"""The shipped model card is what its command writes (issue 28): nobody edits it by hand, and
moving the recipes and the card's writer out of classifier/ changed only the commands it
names."""

from pathlib import Path

from classifier import DEFAULT_BUNDLE
from training.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
EVALUATION = ROOT / "classifier" / "models" / "evaluation"


def test_the_committed_model_card_is_the_one_the_card_command_writes(tmp_path, capsys):
    out = tmp_path / "MODEL_CARD.md"
    code = main(["card", "--evaluation", str(EVALUATION), "--out", str(out)])
    assert code in (0, None)
    assert out.read_text() == (DEFAULT_BUNDLE.parent / "MODEL_CARD.md").read_text()
    assert f"wrote {out}" in capsys.readouterr().out


def test_the_card_names_the_recipes_where_they_are():
    card = (DEFAULT_BUNDLE.parent / "MODEL_CARD.md").read_text()
    named = {
        line.split("`bash ")[1].split(".sh")[0] + ".sh"
        for line in card.splitlines()
        if "`bash " in line
    }
    assert named, "the card names no recipe"
    for recipe in named:
        assert (ROOT / recipe).is_file(), recipe
