rule concepts:
    """Convex NMF concepts per head of one layer, across the tubelets of every video."""
    input:
        tubelets=lambda wc: [
            tubelet_store(wc.proposals, wc.layer, f"{i:03d}")
            for i in range(len(SHARDS))
        ],
        code=code("concepts"),
    output:
        directory(concept_store("{proposals}", "{layer}")),
    log:
        log_path("concepts", f"{concepts_tag('{proposals}')}/layer-{{layer}}"),
    benchmark:
        benchmark_path("concepts", f"{concepts_tag('{proposals}')}/layer-{{layer}}")
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=job_gpus(config["concepts"]["device"]),
        device=config["concepts"]["device"],
    params:
        settings=json.dumps(CONCEPT_SETTINGS),
    shell:
        "videoconcepts concepts --out {output:q} --settings {params.settings:q}"
        " --device {resources.device} --threads {threads} {input.tubelets:q} > {log:q} 2>&1"


rule validation:
    """Demo only: best concept per ground-truth role, SLIC tubelets vs. random crops."""
    input:
        slic=concept_stores("slic"),
        random_crops=concept_stores("random_crops"),
        decoded=decode_stores(),
        ground_truth=f"{DEMO_DIR}/ground_truth.zarr",
        code=code("validation"),
    output:
        best=report(
            validation_tables()[0],
            caption="../report/validation.rst",
            category="Validation",
        ),
        scores=validation_tables()[1],
    log:
        log_path("validation", validation_tag()),
    benchmark:
        benchmark_path("validation", validation_tag())
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        settings=json.dumps(VALIDATION_SETTINGS),
        decode_dir=lambda wc, input: Path(input.decoded[0]).parent,
        concepts=lambda wc, input: [f"slic={p}" for p in input.slic]
        + [f"random_crops={p}" for p in input.random_crops],
    shell:
        "videoconcepts validation --settings {params.settings:q} --ground-truth {input.ground_truth:q}"
        " --decode-dir {params.decode_dir:q} --out {output.best:q} --scores {output.scores:q}"
        " {params.concepts:q} > {log:q} 2>&1"
