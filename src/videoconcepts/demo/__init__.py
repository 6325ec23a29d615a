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
