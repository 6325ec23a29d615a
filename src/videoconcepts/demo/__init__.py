"""The built-in demo: synthetic event videos and the small models trained on them.

What the Snakefile needs at parse time lives here, apart from the generator (which
imports PyAV, pandas and zarr).
"""

EVENTS: tuple[str, ...] = (
    "moves_right",
    "moves_left",
    "passes_behind",
    "falls_into_container",
    "bounces_off_wall",
    "stops_midway",
)


def dataset_ids(videos_per_event: int) -> list[str]:
    """Ids of the videos ``synthetic.generate_dataset`` writes (known before it runs)."""
    return [f"vid{i:04d}" for i in range(videos_per_event * len(EVENTS))]


def styled_path(video_id: str, style: int) -> str:
    """Stylized copy ``style`` (from 1) of a demo video, relative to the demo's folder."""
    return f"styled/{video_id}-s{style}.mp4"


def manipulated_id(video_id: str) -> str:
    """The id of a demo video's manipulated variant (the detector's generated class)."""
    return f"{video_id}-m"


def manipulated_path(video_id: str) -> str:
    """A demo video's manipulated variant, relative to the demo's folder."""
    return f"manipulated/{manipulated_id(video_id)}.mp4"
