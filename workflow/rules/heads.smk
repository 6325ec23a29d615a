rule heads:
    """Every head ranked by CRIS on estimation videos; pruning curve on held-out videos."""
    input:
        decoded=lambda wc: decode_dirs(model_of("heads")(wc)),
        targets=lambda wc: targets_table(model_of("heads")(wc)),
        checkpoint=lambda wc: model_of("heads")(wc).checkpoint_files,
        code=code("heads"),
    output:
        importance=f"{RESULTS}/heads/{{heads}}/head_importance.tsv",
        pruning=report(
            f"{RESULTS}/heads/{{heads}}/pruning_curve.tsv",
            caption="../report/pruning.rst",
            category="Heads",
        ),
    log:
        log_path("heads", "{heads}"),
    benchmark:
        benchmark_path("heads", "{heads}")
    conda:
        ENV
    threads: masking_threads("heads")
    resources:
        **masking_resources("heads"),
        runtime=240,
    params:
        decoded=lambda wc: decode_stores(model_of("heads")(wc)),
        masking=lambda wc: json.dumps(model_of("heads")(wc).head_masking),
        settings=lambda wc: json.dumps(model_of("heads")(wc).heads),
    shell:
        "videoconcepts heads --targets {input.targets:q} --masking {params.masking:q}"
        " --settings {params.settings:q}"
        " --importance {output.importance:q} --pruning {output.pruning:q}"
        + RUNTIME_ARGS
        + " {params.decoded:q} > {log:q} 2>&1"
