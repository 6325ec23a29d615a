rule connectome:
    """Visual Concept Connectomes per class: top-down segments, layer concepts, ITCAV
    edges and their validation (reads the run's feature stores; connectome.enabled)."""
    input:
        features=lambda wc: feature_stores(model_of("connectome")(wc)),
        decoded=lambda wc: decode_dirs(model_of("connectome")(wc)),
        targets=lambda wc: targets_table(model_of("connectome")(wc)),
        checkpoint=lambda wc: model_of("connectome")(wc).checkpoint_files,
        code=code("connectome"),
    output:
        store=directory(f"{RESULTS}/connectome/{{connectome}}/connectome.zarr"),
        graphs=directory(f"{RESULTS}/connectome/{{connectome}}/graphs"),
        nodes=report(
            f"{RESULTS}/connectome/{{connectome}}/connectome_nodes.tsv",
            caption="../report/connectome.rst",
            category="Connectomes",
        ),
        edges=f"{RESULTS}/connectome/{{connectome}}/connectome_edges.tsv",
        layers=f"{RESULTS}/connectome/{{connectome}}/connectome_layers.tsv",
        fidelity=f"{RESULTS}/connectome/{{connectome}}/connectome_fidelity.tsv",
        validation=f"{RESULTS}/connectome/{{connectome}}/connectome_validation.tsv",
    log:
        log_path("connectome", "{connectome}"),
    benchmark:
        benchmark_path("connectome", "{connectome}")
    conda:
        ENV
    threads: masking_threads("connectome")
    resources:
        **masking_resources("connectome"),
        runtime=60,
    params:
        name=lambda wc: model_of("connectome")(wc).name,
        scoring=lambda wc: json.dumps(model_of("connectome")(wc).targets),
        settings=lambda wc: json.dumps(model_of("connectome")(wc).connectome),
    shell:
        "videoconcepts connectome --name {params.name} --out {output.store:q}"
        " --graphs {output.graphs:q} --nodes {output.nodes:q} --edges {output.edges:q}"
        " --layers {output.layers:q} --fidelity {output.fidelity:q}"
        " --validation {output.validation:q} --targets {input.targets:q}"
        " --scoring {params.scoring:q} --settings {params.settings:q}"
        + RUNTIME_ARGS
        + " {input.features:q} > {log:q} 2>&1"
