rule features:
    """Per-head keys/queries/values, residual tokens and logits for one shard of videos."""
    input:
        decoded=shard_decode_stores,
        checkpoint=CHECKPOINT_FILES,
    output:
        directory(f"{FEATURES_DIR}/shard-{{shard}}.zarr"),
    params:
        settings=json.dumps(FEATURE_SETTINGS),
        batch_size=config["features"]["batch_size"],
        device=config["features"]["device"],
    log:
        log_path("features", f"{Path(FEATURES_DIR).name}/shard-{{shard}}"),
    benchmark:
        benchmark_path("features", f"{Path(FEATURES_DIR).name}/shard-{{shard}}")
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=4000,
    shell:
        "videoconcepts features --out {output:q} --settings {params.settings:q}"
        " --batch-size {params.batch_size} --device {params.device}"
        " {input.decoded:q} > {log:q} 2>&1"
