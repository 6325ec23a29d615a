rule features:
    """Per-head keys/queries/values, residual tokens and logits for one shard of videos."""
    input:
        decoded=lambda wc: decode_dirs(model_of("features")(wc), shard_samples(wc)),
        checkpoint=lambda wc: model_of("features")(wc).checkpoint_files,
        code=code("features"),
    output:
        directory(f"{RESULTS}/features/{{features}}/shard-{{shard}}.zarr"),
    log:
        log_path("features", "{features}/shard-{shard}"),
    benchmark:
        benchmark_path("features", "{features}/shard-{shard}")
    priority: PRIORITY["features"]
    conda:
        ENV
    threads: lambda wc: model_of("features")(wc).feature_threads
    # Runtime options that do not change results are resources, not params: changing
    # them reruns nothing, and cluster profiles can override them with set-resources.
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=lambda wc: job_gpus(model_of("features")(wc).config["features"]["device"]),
        batch_size=lambda wc: model_of("features")(wc).config["features"]["batch_size"],
        device=lambda wc: model_of("features")(wc).config["features"]["device"],
    params:
        decoded=lambda wc: decode_stores(model_of("features")(wc), shard_samples(wc)),
        settings=lambda wc: json.dumps(model_of("features")(wc).features),
    shell:
        "videoconcepts features --out {output:q} --settings {params.settings:q} --threads {threads}"
        " --batch-size {resources.batch_size} --device {resources.device}"
        " {params.decoded:q} > {log:q} 2>&1"
