"""Help ▸ About shows what the app's precision setting chose on this CPU and why."""

from __future__ import annotations

from engine.inference import precision as pr


def test_about_shows_the_choice_of_the_app_setting():
    from app.gui.dialogs.about import about_text

    t = about_text("auto")
    assert "precision auto on this CPU" in t and "inference precision f32" in t
    assert pr.AUTO_RULES[pr.cpu_capability()].reason.split(" (")[0] in t
    assert "precision bf16 on this CPU" in about_text("bf16") and "set explicitly" in about_text("bf16")
