rule curves:
    """Remove units cumulatively by CRIS, occlusion and random order; areas per curve."""
    input:
        units=lambda wc: units_store(model_of("curves")(wc)),
        targets=lambda wc: targets_table(model_of("curves")(wc)),
        cris=lambda wc: cris_tables(model_of("curves")(wc))["importance"],
        occlusion=lambda wc: occlusion_table(model_of("curves")(wc)),
        checkpoint=lambda wc: model_of("curves")(wc).checkpoint_files,
        code=code("curves"),
    output:
        curves=f"{RESULTS}/curves/{{curves}}/attribution_curves.tsv",
        fidelity=report(
            f"{RESULTS}/curves/{{curves}}/fidelity.tsv",
            caption="../report/fidelity.rst",
            category="Importance",
        ),
        checks=f"{RESULTS}/curves/{{curves}}/fidelity_checks.tsv",
    log:
        log_path("curves", "{curves}"),
    benchmark:
        benchmark_path("curves", "{curves}")
    priority: PRIORITY["curves"]
    conda:
        ENV
    threads: masking_threads("curves")
    resources:
        **masking_resources("curves"),
        runtime=120,
    params:
        masking=lambda wc: json.dumps(model_of("curves")(wc).masking),
        settings=lambda wc: json.dumps(model_of("curves")(wc).curves),
    shell:
        "videoconcepts curves --units {input.units:q} --targets {input.targets:q}"
        " --masking {params.masking:q} --settings {params.settings:q}"
        " --curves {output.curves:q} --fidelity {output.fidelity:q}"
        " --checks {output.checks:q}"
        + RUNTIME_ARGS
        + " cris={input.cris:q} occlusion={input.occlusion:q} > {log:q} 2>&1"
