rule concepts:
    """Convex NMF concepts per head of a group of layers (a store per layer), across the
    tubelets of every video."""
    input:
        tubelets=lambda wc: tubelet_dirs(*job_of("concepts", wc)),
        code=code("concepts"),
    output:
        directory(f"{RESULTS}/concepts/{{concepts}}/{{group}}"),
    log:
        log_path("concepts", "{concepts}/{group}"),
    benchmark:
        benchmark_path("concepts", "{concepts}/{group}")
    priority: PRIORITY["concepts"]
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=lambda wc: job_gpus(model_of("concepts")(wc).config["concepts"]["device"]),
        device=lambda wc: model_of("concepts")(wc).config["concepts"]["device"],
    params:
        settings=lambda wc: json.dumps(model_of("concepts")(wc).concepts),
        out=lambda wc, output: [
            f"{output[0]}/layer-{layer:02d}.zarr"
            for layer in model_of("concepts")(wc).concept_groups[wc.group]
        ],
        stores=lambda wc, input: [
            f"{d}/layer-{layer:02d}.zarr"
            for layer in model_of("concepts")(wc).concept_groups[wc.group]
            for d in input.tubelets
        ],
    shell:
        "videoconcepts concepts --out {params.out:q} --settings {params.settings:q}"
        " --device {resources.device} --threads {threads} {params.stores:q} > {log:q} 2>&1"


rule validation:
    """Demo only: best concept per ground-truth role, SLIC tubelets vs. random crops."""
    input:
        slic=lambda wc: concept_dirs(model_of("validation")(wc), "slic"),
        random_crops=lambda wc: concept_dirs(model_of("validation")(wc), "random_crops"),
        decoded=lambda wc: decode_dirs(model_of("validation")(wc)),
        ground_truth=f"{DEMO_DIR}/ground_truth.zarr",
        code=code("validation"),
    output:
        best=report(
            f"{RESULTS}/validation/{{validation}}/concept_validation.tsv",
            caption="../report/validation.rst",
            category="Validation",
        ),
        scores=f"{RESULTS}/validation/{{validation}}/concept_scores.tsv",
    log:
        log_path("validation", "{validation}"),
    benchmark:
        benchmark_path("validation", "{validation}")
    priority: PRIORITY["validation"]
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        settings=lambda wc: json.dumps(model_of("validation")(wc).validation),
        decoded=lambda wc: decode_stores(model_of("validation")(wc)),
        concepts=lambda wc: [
            f"{method}={p}"
            for method in ("slic", "random_crops")
            for p in concept_stores(model_of("validation")(wc), method)
        ],
    shell:
        "videoconcepts validation --settings {params.settings:q} --ground-truth {input.ground_truth:q}"
        " --decoded {params.decoded:q} --out {output.best:q} --scores {output.scores:q}"
        " {params.concepts:q} > {log:q} 2>&1"
