rule decode:
    """Sample, resize and crop each video of one shard into a uint8 frame store (or a
    skip record), a store per video in the job's folder."""
    input:
        videos=video_inputs,
        code=code("decode"),
    output:
        directory(f"{RESULTS}/decode/{{decode}}/shard-{{shard}}"),
    log:
        log_path("decode", "{decode}/shard-{shard}"),
    benchmark:
        benchmark_path("decode", "{decode}/shard-{shard}")
    conda:
        ENV
    # Options that do not change the frames are resources, not params: changing them
    # reruns nothing (as with the features rule's device). Models sharing the stores
    # share the first one's.
    resources:
        mem_mb=1000,
        runtime=30,
        on_bad_video=lambda wc: model_of("decode")(wc).config["decode"]["on_bad_video"],
        backend=lambda wc: model_of("decode")(wc).config["decode"]["backend"],
    params:
        videos=lambda wc: [f"{video}={VIDEOS[video]}" for video in shard_videos(wc)],
        settings=lambda wc: json.dumps(model_of("decode")(wc).decode),
    shell:
        "videoconcepts decode --out {output:q} --settings {params.settings:q}"
        " --on-bad-video {resources.on_bad_video} --backend {resources.backend}"
        " {params.videos:q} > {log:q} 2>&1"


rule skipped:
    """Table of videos the decode stage skipped, with reasons (empty when none)."""
    input:
        decoded=lambda wc: decode_dirs(model_of("decode")(wc)),
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
    params:
        decoded=lambda wc: decode_stores(model_of("decode")(wc)),
    shell:
        "videoconcepts skipped --out {output:q} {params.decoded:q} > {log:q} 2>&1"
