rule features:
    """Per-head keys/queries/values, residual tokens and logits for one shard of videos."""
    input:
        decoded=shard_decode_stores,
        checkpoint=CHECKPOINT_FILES,
        code=code("features"),
    output:
        directory(f"{FEATURES_DIR}/shard-{{shard}}.zarr"),
    log:
        log_path("features", f"{FEATURES_TAG}/shard-{{shard}}"),
    benchmark:
        benchmark_path("features", f"{FEATURES_TAG}/shard-{{shard}}")
    conda:
        ENV
    threads: FEATURE_THREADS
    # Runtime options that do not change results are resources, not params: changing
    # them reruns nothing, and cluster profiles can override them with set-resources.
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=job_gpus(config["features"]["device"]),
        batch_size=config["features"]["batch_size"],
        device=config["features"]["device"],
    params:
        settings=json.dumps(FEATURE_SETTINGS),
    shell:
        "videoconcepts features --out {output:q} --settings {params.settings:q} --threads {threads}"
        " --batch-size {resources.batch_size} --device {resources.device}"
        " {input.decoded:q} > {log:q} 2>&1"
