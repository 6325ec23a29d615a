rule demo_data:
    """Synthetic event videos (H.264) and their ground-truth masks, from a seed."""
    input:
        code=code("demo_data"),
    output:
        videos=expand(
            "{dir}/videos/{video}.mp4",
            dir=DEMO_DIR,
            video=dataset_ids(config["demo"]["videos_per_event"]),
        ),
        styled=styled_videos() if DEMO else [],
        manipulated=list(EXTRA["path"]) if DEMO else [],
        detection=[DETECTION_SHEET] if DEMO and DETECTION_SHEET else [],
        manipulated_truth=(
            [directory(f"{DEMO_DIR}/manipulated.zarr")]
            if DEMO and DETECTION_SHEET
            else []
        ),
        samples=f"{DEMO_DIR}/samples.tsv",
        ground_truth=directory(f"{DEMO_DIR}/ground_truth.zarr"),
    log:
        log_path("demo_data", "demo_data"),
    benchmark:
        benchmark_path("demo_data", "demo_data")
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        out=lambda wildcards, output: Path(output.samples).parent,
        videos_per_event=config["demo"]["videos_per_event"],
        seed=config["demo"]["seed"],
        styles=config["demo"]["styles"],
        manipulated="--manipulated" if config["demo"]["manipulated"] else "",
    shell:
        "videoconcepts demo_data --out {params.out:q} --videos-per-event {params.videos_per_event}"
        " --seed {params.seed} --styles {params.styles} {params.manipulated}"
        " > {log:q} 2>&1"


rule train_demo_model:
    """Retrain a shipped demo model from its seed (not part of the default run):
    `snakemake train_demo_model/<model>/model.safetensors` for videomae, timesformer or
    videomae_ssl."""
    input:
        code=code("train_demo_model"),
    output:
        weights=f"{RESULTS}/train_demo_model/{{demo_model}}/model.safetensors",
        report=f"{RESULTS}/train_demo_model/{{demo_model}}/training.json",
    log:
        log_path("train_demo_model", "{demo_model}"),
    benchmark:
        benchmark_path("train_demo_model", "{demo_model}")
    wildcard_constraints:
        demo_model="videomae|timesformer|videomae_ssl",
    conda:
        ENV
    # not workflow.cores: a cluster run without --cores has none and fails to parse;
    # locally Snakemake scales this down to --cores
    threads: 8
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        out=lambda wildcards, output: Path(output.weights).parent,
    shell:
        "videoconcepts train_demo_model --model {wildcards.demo_model} --out {params.out:q}"
        " --threads {threads} > {log:q} 2>&1"
