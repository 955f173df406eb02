"""Checks of notebook 08's exercises (stories on request)."""

from __future__ import annotations

from slm_helpers.exercises.registry import exercise


@exercise("08.1")
def _loss_targets(answer, **_):
    """The learner's targets for a record's row against :func:`slm_helpers.instruct.example_row`,
    for a record that fits, one cut by the block, and one that ends exactly at it."""
    from slm_helpers.instruct import example_row

    prompt, story, pad = [7, 8, 9, 10], [20, 21, 22, 23, 24, 99], 99
    for block_size in (16, 6, 9, 4):
        expected = example_row(prompt, story, block_size, pad)[1].tolist()
        got = [int(t) for t in answer(list(prompt), list(story), block_size, pad)]
        if got != expected:
            return False, (f"with block_size {block_size} the targets are {expected}, not {got}: the targets are the "
                           "ids shifted by one; -1 while the next token is still the prompt's (the first "
                           "len(prompt) - 1 positions) and after the story's end")
    return True, ""


@exercise("08.2")
def _uses_word(answer, **_):
    from slm_helpers.checker import words_used

    cases = [("The dog ran.", "dog"), ("Two dogs ran.", "dog"),
             ("She was baking.", "bake"), ("He baked a pie.", "bake"),
             ("They played all day.", "play"), ("She is playing.", "play"), ("He boxes toys.", "box"),
             ("The doghouse was red.", "dog"), ("A big Cat sat.", "cat"), ("The cattle ate.", "cat"),
             ("Lily smiled.", "smile"), ("He tries again.", "try"), ("It was hot.", "hat"), ("hop", "hope")]
    for story, word in cases:
        expected = words_used(story, [word]) == 1.0
        if bool(answer(story, word)) != expected:
            return False, (f"uses({story!r}, {word!r}) should be {expected}: compare whole words, in lower case, with "
                           "the word and its forms (-s, -es, -ed, -d, -ing; a final e dropped before -ing and -ed; "
                           "y to -ies and -ied)")
    return True, ""
