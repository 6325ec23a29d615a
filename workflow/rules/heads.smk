rule heads:
    """Every head ranked by CRIS on estimation videos; pruning curve on held-out videos."""
    input:
        decoded=decode_stores(),
        targets=targets_table(),
        checkpoint=CHECKPOINT_FILES,
        code=code("heads"),
    output:
        importance=heads_tables()["importance"],
        pruning=report(
            heads_tables()["pruning"],
            caption="../report/pruning.rst",
            category="Heads",
        ),
    log:
        log_path("heads", heads_tag()),
    benchmark:
        benchmark_path("heads", heads_tag())
    conda:
        ENV
    threads: MASKING_THREADS
    resources:
        **MASKING_RESOURCES,
        runtime=240,
    params:
        masking=json.dumps(HEAD_MASKING_SETTINGS),
        settings=json.dumps(HEADS_SETTINGS),
    shell:
        "videoconcepts heads --targets {input.targets:q} --masking {params.masking:q}"
        " --settings {params.settings:q}"
        " --importance {output.importance:q} --pruning {output.pruning:q}"
        + RUNTIME_ARGS
        + " {input.decoded:q} > {log:q} 2>&1"
