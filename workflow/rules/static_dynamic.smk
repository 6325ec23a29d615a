rule static_dynamic:
    """Static and dynamic units of every analysed layer, head and concept from restyled
    and frame-shuffled pairs of each video, against random weights; unit removal
    (static_dynamic.enabled)."""
    input:
        decoded=lambda wc: decode_dirs(model_of("static_dynamic")(wc)),
        styled=styled_videos(),
        samples=LABELS,
        concepts=lambda wc: concept_dirs(model_of("static_dynamic")(wc)),
        targets=lambda wc: targets_table(model_of("static_dynamic")(wc)),
        checkpoint=lambda wc: model_of("static_dynamic")(wc).checkpoint_files,
        code=code("static_dynamic"),
    output:
        store=directory(
            f"{RESULTS}/static_dynamic/{{static_dynamic}}/static_dynamic.zarr"
        ),
        layers=report(
            f"{RESULTS}/static_dynamic/{{static_dynamic}}/static_dynamic_layers.tsv",
            caption="../report/static_dynamic.rst",
            category="Static and dynamic",
        ),
        units=f"{RESULTS}/static_dynamic/{{static_dynamic}}/static_dynamic_units.tsv",
        concepts=f"{RESULTS}/static_dynamic/{{static_dynamic}}/static_dynamic_concepts.tsv",
        versions=f"{RESULTS}/static_dynamic/{{static_dynamic}}/static_dynamic_versions.tsv",
        removal=f"{RESULTS}/static_dynamic/{{static_dynamic}}/unit_removal.tsv",
    log:
        log_path("static_dynamic", "{static_dynamic}"),
    benchmark:
        benchmark_path("static_dynamic", "{static_dynamic}")
    conda:
        ENV
    threads: masking_threads("static_dynamic")
    resources:
        **masking_resources("static_dynamic"),
        runtime=120,
    params:
        decoded=lambda wc: decode_stores(model_of("static_dynamic")(wc)),
        name=lambda wc: model_of("static_dynamic")(wc).name,
        scoring=lambda wc: json.dumps(model_of("static_dynamic")(wc).targets),
        settings=lambda wc: json.dumps(model_of("static_dynamic")(wc).static_dynamic),
        concepts=lambda wc: concept_stores(model_of("static_dynamic")(wc)),
        samples=samples_arg,
    shell:
        "videoconcepts static_dynamic --name {params.name} --out {output.store:q}"
        " --layers {output.layers:q} --units {output.units:q}"
        " --concepts {output.concepts:q} --versions {output.versions:q}"
        " --removal {output.removal:q}"
        " --targets {input.targets:q} {params.samples}"
        " --concepts-stores {params.concepts:q}"
        " --scoring {params.scoring:q} --settings {params.settings:q}"
        + RUNTIME_ARGS
        + " {params.decoded:q} > {log:q} 2>&1"
