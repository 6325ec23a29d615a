rule occlusion:
    """Baseline importance: each unit masked alone on each video where it appears."""
    input:
        units=units_store(),
        targets=targets_table(),
        checkpoint=CHECKPOINT_FILES,
        code=code("occlusion"),
    output:
        occlusion_table(),
    log:
        log_path("occlusion", occlusion_tag()),
    benchmark:
        benchmark_path("occlusion", occlusion_tag())
    conda:
        ENV
    threads: MASKING_THREADS
    resources:
        **MASKING_RESOURCES,
        runtime=120,
    params:
        masking=json.dumps(MASKING_SETTINGS),
    shell:
        "videoconcepts occlusion --units {input.units:q} --targets {input.targets:q}"
        " --out {output:q} --masking {params.masking:q}"
        + RUNTIME_ARGS
        + " > {log:q} 2>&1"
