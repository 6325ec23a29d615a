rule straightening:
    """Curvature of each video's trajectory per layer, against its pixels, the same
    layers with random weights and shuffled time; also of the detection sheet's videos
    (reads the feature stores; straightening.enabled)."""
    input:
        features=lambda wc: straightening_features(model_of("straightening")(wc)),
        decoded=lambda wc: decode_dirs(model_of("straightening")(wc), VIDEOS.index),
        labels=[DETECTION_SHEET] if DETECTION_SHEET else [],
        checkpoint=lambda wc: model_of("straightening")(wc).checkpoint_files,
        code=code("straightening"),
    output:
        store=directory(f"{RESULTS}/straightening/{{straightening}}/straightening.zarr"),
        table=report(
            f"{RESULTS}/straightening/{{straightening}}/straightening.tsv",
            caption="../report/straightening.rst",
            category="Straightening",
        ),
    log:
        log_path("straightening", "{straightening}"),
    benchmark:
        benchmark_path("straightening", "{straightening}")
    priority: PRIORITY["straightening"]
    conda:
        ENV
    # the random-weights model runs as the features stage runs the trained one
    threads: lambda wc: model_of("straightening")(wc).feature_threads
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=lambda wc: job_gpus(
            model_of("straightening")(wc).config["features"]["device"]
        ),
        batch_size=lambda wc: model_of("straightening")(wc).config["features"][
            "batch_size"
        ],
        device=lambda wc: model_of("straightening")(wc).config["features"]["device"],
    params:
        name=lambda wc: model_of("straightening")(wc).name,
        settings=lambda wc: json.dumps(model_of("straightening")(wc).straightening),
        labels=lambda wc, input: (
            f"--labels '{input.labels[0]}' --column '{DETECTION_CLASSES[0]}'"
            f" --natural '{DETECTION_CLASSES[1]}'"
            if input.labels
            else ""
        ),
    shell:
        "videoconcepts straightening --name {params.name} --out {output.store:q}"
        " --table {output.table:q}"
        " --settings {params.settings:q} {params.labels} --threads {threads}"
        " --batch-size {resources.batch_size} --device {resources.device}"
        " {input.features:q} > {log:q} 2>&1"


rule detector:
    """Natural vs generated video from each trajectory's ReStraV numbers, cross-validated
    per layer; the fitted detector (detector.enabled, with a detection sheet)."""
    input:
        straightening=lambda wc: straightening_outputs(model_of("detector")(wc))[
            "store"
        ],
        code=code("detector"),
    output:
        cv=report(
            f"{RESULTS}/detector/{{detector}}/detector_cv.tsv",
            caption="../report/detector.rst",
            category="Straightening",
        ),
        scores=f"{RESULTS}/detector/{{detector}}/detector_scores.tsv",
        detector=f"{RESULTS}/detector/{{detector}}/detector.joblib",
    log:
        log_path("detector", "{detector}"),
    benchmark:
        benchmark_path("detector", "{detector}")
    priority: PRIORITY["detector"]
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        name=lambda wc: model_of("detector")(wc).name,
        settings=lambda wc: json.dumps(model_of("detector")(wc).detector),
    shell:
        "videoconcepts detector --name {params.name} --cv {output.cv:q}"
        " --scores {output.scores:q} --detector {output.detector:q}"
        " --settings {params.settings:q} {input.straightening:q} > {log:q} 2>&1"


rule detect:
    """Score detector.score's videos with a model's fitted detector (not part of the run
    unless detector.score is set)."""
    input:
        detector=lambda wc: detector_outputs(model_of("detector")(wc))["detector"],
        videos=list(SCORED["path"]) if SCORED is not None else [],
        checkpoint=lambda wc: model_of("detector")(wc).checkpoint_files,
        code=code("detect"),
    output:
        f"{RESULTS}/detect/{{detector}}/{{scored}}/scores.tsv",
    log:
        log_path("detect", "{detector}/{scored}"),
    benchmark:
        benchmark_path("detect", "{detector}/{scored}")
    conda:
        ENV
    threads: lambda wc: model_of("detector")(wc).feature_threads
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=lambda wc: job_gpus(model_of("detector")(wc).config["features"]["device"]),
        device=lambda wc: model_of("detector")(wc).config["features"]["device"],
    params:
        videos=config["detector"]["score"],
    shell:
        "videoconcepts detect --detector {input.detector:q} --out {output:q}"
        " --threads {threads} --device {resources.device} {params.videos:q}"
        " > {log:q} 2>&1"
