import pytest

from slm_helpers.stories import generate_stories, is_validation_story, make_story


def test_same_seed_same_stories_other_seed_other_stories():
    assert list(generate_stories(50, "train", seed=3)) == list(generate_stories(50, "train", seed=3))
    assert set(generate_stories(50, "train", seed=3)).isdisjoint(generate_stories(50, "train", seed=4))


def test_splits_are_disjoint_and_stories_distinct():
    train = list(generate_stories(5_000, "train"))
    validation = list(generate_stories(300, "validation"))
    assert set(train).isdisjoint(validation)
    assert all(not is_validation_story(s) for s in train) and all(is_validation_story(s) for s in validation)
    assert len(set(train)) > 0.99 * len(train)  # thousands of distinct stories


def test_stories_are_varied_children_stories():
    stories = list(generate_stories(2_000, "train"))
    text = " ".join(stories)
    assert all(s.split()[0] in {"Once", "One", "There"} for s in stories)
    assert text.count('"') > 2 * len(stories)  # dialogue
    assert all(k in text for k in ["sad", "happy", "scared", "proud"])  # feelings
    openings = {s.split(".")[1] for s in stories}
    assert len(openings) > 500  # many different plots and characters, not one template
    lengths = [len(s.split()) for s in stories]
    assert min(lengths) > 40 and max(lengths) < 400


def test_make_story_is_a_pure_function_of_seed_and_index():
    assert make_story(1, 10) == make_story(1, 10) != make_story(1, 11)


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        list(generate_stories(1, "test"))
    with pytest.raises(ValueError, match="n_stories"):
        list(generate_stories(-1))
