import pytest

from videoconcepts.plan.samples import (
    SampleSheetError,
    detection_labels,
    load_detection,
    load_samples,
)


@pytest.fixture()
def videos(tmp_path):
    (tmp_path / "clips").mkdir()
    for name in ("a.mp4", "b.mp4", "notes.txt"):
        (tmp_path / "clips" / name).write_bytes(b"x")
    return tmp_path


def test_sheet_paths_are_relative_to_the_sheet(videos):
    sheet = videos / "sheet.tsv"
    sheet.write_text("path\tid\tlabel\nclips/a.mp4\tfirst\tjump\nclips/b.mp4\tsecond\t\n")
    table = load_samples(sheet)
    assert list(table["id"]) == ["first", "second"]
    assert table["path"][0] == str(videos / "clips" / "a.mp4")
    assert list(table["label"]) == ["jump", ""]


def test_styled_copies_are_resolved_and_checked_like_videos(videos):
    sheet = videos / "sheet.tsv"
    sheet.write_text("path\tstyled\nclips/a.mp4\tclips/b.mp4; clips/a.mp4\nclips/b.mp4\t\n")
    table = load_samples(sheet)
    assert table["styled"][0] == f"{videos / 'clips' / 'b.mp4'};{videos / 'clips' / 'a.mp4'}"
    assert table["styled"][1] == ""
    sheet.write_text("path\tstyled\nclips/a.mp4\tclips/gone.mp4\n")
    with pytest.raises(SampleSheetError, match="missing video files: .*gone.mp4"):
        load_samples(sheet)


def test_csv_without_ids_uses_file_stems(videos):
    sheet = videos / "sheet.csv"
    sheet.write_text("path\nclips/b.mp4\nclips/a.mp4\n")
    assert list(load_samples(sheet)["id"]) == ["b", "a"]


def test_folder_and_glob_list_only_videos(videos):
    assert list(load_samples(videos / "clips")["id"]) == ["a", "b"]
    assert list(load_samples(str(videos / "clips" / "b*"))["id"]) == ["b"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("path\tid\nclips/a.mp4\tx\nclips/b.mp4\tx\n", "duplicate ids: x"),
        ("path\nclips/a.mp4\nclips/gone.mp4\n", "missing video files: .*gone.mp4"),
        ("file\nclips/a.mp4\n", "needs a 'path' column"),
        ("path\tcolour\nclips/a.mp4\tred\n", "unknown sample sheet columns: colour"),
        ("path\tid\nclips/a.mp4\tbad id\n", "ids must be"),
        ("path\n", "no samples"),
    ],
)
def test_bad_sheets_are_rejected_with_the_reason(videos, content, message):
    sheet = videos / "sheet.tsv"
    sheet.write_text(content)
    with pytest.raises(SampleSheetError, match=message) as err:
        load_samples(sheet)
    assert "sheet.tsv" in str(err.value)


def test_missing_source_and_empty_folder(tmp_path):
    with pytest.raises(SampleSheetError, match="no such sample sheet"):
        load_samples(tmp_path / "nope.tsv")
    with pytest.raises(SampleSheetError, match="no video files"):
        load_samples(tmp_path)


def test_a_detection_sheet_names_classes_groups_and_defects(videos):
    (videos / "det.tsv").write_text(
        "path\tid\tkind\tgroup\tdefect\n"
        "clips/a.mp4\ta\treal\t\t\nclips/b.mp4\tb\tsora\ta\tflicker\nclips/a.mp4\tc\tveo\t\t\n"
    )
    table = load_detection(videos / "det.tsv", "kind", "real")
    assert table["label"].tolist() == ["natural", "generated", "generated"]
    assert table["group"].tolist() == ["a", "a", "c"]  # empty: the video alone
    assert table["defect"].tolist() == ["", "flicker", ""]
    assert detection_labels(videos / "det.tsv", "kind", "real")["b"] == ("generated", "a")
    with pytest.raises(SampleSheetError, match="unknown sample sheet columns: defect, group, kind"):
        load_samples(videos / "det.tsv")  # the run's own sheet stays strict
    with pytest.raises(SampleSheetError, match="column 'kind' needs natural videos"):
        load_detection(videos / "det.tsv", "kind", "natural")
    (videos / "gap.tsv").write_text("path\tkind\nclips/a.mp4\treal\nclips/b.mp4\t\n")
    with pytest.raises(SampleSheetError, match="column 'kind' is empty for: b"):
        load_detection(videos / "gap.tsv", "kind", "real")
