rule decode:
    """Sample, resize and crop one video's clip into a uint8 frame store (or a skip record)."""
    input:
        video=video_input,
        code=code("decode"),
    output:
        directory(decode_store("{video}")),
    log:
        log_path("decode", f"{DECODE_HASH}/{{video}}"),
    benchmark:
        benchmark_path("decode", f"{DECODE_HASH}/{{video}}")
    conda:
        ENV
    # Options that do not change the frames are resources, not params: changing them
    # reruns nothing (as with the features rule's device).
    resources:
        mem_mb=1000,
        runtime=10,
        on_bad_video=config["decode"]["on_bad_video"],
        backend=config["decode"]["backend"],
    params:
        video=lambda wc: SAMPLES.loc[wc.video, "path"],
        settings=json.dumps(DECODE_SETTINGS),
    shell:
        "videoconcepts decode --video {params.video:q} --id {wildcards.video} --out {output:q}"
        " --settings {params.settings:q} --on-bad-video {resources.on_bad_video}"
        " --backend {resources.backend} > {log:q} 2>&1"


rule skipped:
    """Table of videos the decode stage skipped, with reasons (empty when none)."""
    input:
        stores=decode_stores(),
        code=code("skipped"),
    output:
        skipped_table(),
    log:
        log_path("skipped", DECODE_HASH),
    benchmark:
        benchmark_path("skipped", DECODE_HASH)
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "videoconcepts skipped --out {output:q} {input.stores:q} > {log:q} 2>&1"
