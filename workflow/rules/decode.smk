rule decode:
    """Sample, resize and crop one video's clip into a uint8 frame store (or a skip record)."""
    input:
        video=video_input,
        code=code("decode"),
    output:
        directory(f"{RESULTS}/decode/{{decode}}/{{video}}.zarr"),
    log:
        log_path("decode", "{decode}/{video}"),
    benchmark:
        benchmark_path("decode", "{decode}/{video}")
    conda:
        ENV
    # Options that do not change the frames are resources, not params: changing them
    # reruns nothing (as with the features rule's device). Models sharing the store
    # share the first one's.
    resources:
        mem_mb=1000,
        runtime=10,
        on_bad_video=lambda wc: model_of("decode")(wc).config["decode"]["on_bad_video"],
        backend=lambda wc: model_of("decode")(wc).config["decode"]["backend"],
    params:
        video=lambda wc: VIDEOS[wc.video],
        settings=lambda wc: json.dumps(model_of("decode")(wc).decode),
    shell:
        "videoconcepts decode --video {params.video:q} --id {wildcards.video} --out {output:q}"
        " --settings {params.settings:q} --on-bad-video {resources.on_bad_video}"
        " --backend {resources.backend} > {log:q} 2>&1"


rule skipped:
    """Table of videos the decode stage skipped, with reasons (empty when none)."""
    input:
        stores=lambda wc: decode_stores(model_of("decode")(wc)),
        code=code("skipped"),
    output:
        f"{RESULTS}/skipped/{{decode}}/skipped.tsv",
    log:
        log_path("skipped", "{decode}"),
    benchmark:
        benchmark_path("skipped", "{decode}")
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "videoconcepts skipped --out {output:q} {input.stores:q} > {log:q} 2>&1"
