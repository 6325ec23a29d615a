# Runtime options (masks per forward pass, device) are resources: they change speed,
# not results, so changing them reruns nothing (except the shard layout, see cris_shard).
IMPORTANCE_RESOURCES = dict(
    mem_mb=4000,
    gpu=job_gpus(config["importance"]["device"]),
    masks_per_batch=config["importance"]["masks_per_batch"],
    device=config["importance"]["device"],
)


rule units:
    """Every concept of every analysed layer and head as a maskable unit (token masks)."""
    input:
        concepts=concept_stores(),
        code=code("concept_units"),
    output:
        directory(units_store()),
    log:
        log_path("importance", importance_name(f"{importance_dir()}/units")),
    benchmark:
        benchmark_path("importance", importance_name(f"{importance_dir()}/units"))
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "videoconcepts units --out {output:q} {input.concepts:q} > {log:q} 2>&1"


rule cris:
    """One shard of CRIS masks scored on every video (shards run as parallel jobs)."""
    input:
        units=units_store(),
        checkpoint=CHECKPOINT_FILES,
        samples=LABELS,
        code=code("importance"),
    output:
        directory(cris_shard("{cris_shard}")),
    log:
        log_path(
            "importance",
            importance_name(cris_shard("{cris_shard}").removesuffix(".zarr")),
        ),
    benchmark:
        benchmark_path(
            "importance",
            importance_name(cris_shard("{cris_shard}").removesuffix(".zarr")),
        )
    conda:
        ENV
    threads: 2
    resources:
        **IMPORTANCE_RESOURCES,
        runtime=240,
    params:
        masking=json.dumps(MASKING_SETTINGS),
        settings=json.dumps(CRIS_SETTINGS),
        samples=samples_arg,
        shards=config["importance"]["shards"],
    shell:
        "videoconcepts cris --units {input.units:q} --out {output:q}"
        " --settings {params.settings:q} --shard {wildcards.cris_shard}"
        " --shards {params.shards}"
        " --masking {params.masking:q} --batch-size {resources.masks_per_batch}"
        " --device {resources.device} --threads {threads} {params.samples}"
        " > {log:q} 2>&1"


rule cris_gather:
    """Reduce the CRIS shards: importance, standard error and ranking stability per unit."""
    input:
        units=units_store(),
        shards=cris_shards(),
        code=code("importance"),
    output:
        importance=report(
            f"{cris_dir()}/concept_importance.tsv",
            caption="../report/importance.rst",
            category="Importance",
        ),
        stability=f"{cris_dir()}/stability.tsv",
    log:
        log_path("importance", importance_name(f"{cris_dir()}/gather")),
    benchmark:
        benchmark_path("importance", importance_name(f"{cris_dir()}/gather"))
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        settings=json.dumps(CRIS_SETTINGS),
    shell:
        "videoconcepts cris-gather --units {input.units:q} --settings {params.settings:q}"
        " --importance {output.importance:q} --stability {output.stability:q}"
        " {input.shards:q} > {log:q} 2>&1"


rule occlusion:
    """Baseline importance: each unit masked alone on each video where it appears."""
    input:
        units=units_store(),
        checkpoint=CHECKPOINT_FILES,
        samples=LABELS,
        code=code("attribution"),
    output:
        occlusion_table(),
    log:
        log_path(
            "importance",
            importance_name(f"{importance_dir()}/occlusion-{MASKING_HASH}"),
        ),
    benchmark:
        benchmark_path(
            "importance",
            importance_name(f"{importance_dir()}/occlusion-{MASKING_HASH}"),
        )
    conda:
        ENV
    threads: 2
    resources:
        **IMPORTANCE_RESOURCES,
        runtime=120,
    params:
        masking=json.dumps(MASKING_SETTINGS),
        samples=samples_arg,
    shell:
        "videoconcepts occlusion --units {input.units:q} --out {output:q}"
        " --masking {params.masking:q} --batch-size {resources.masks_per_batch}"
        " --device {resources.device} --threads {threads} {params.samples}"
        " > {log:q} 2>&1"


rule attribution_curves:
    """Remove units cumulatively by CRIS, occlusion and random order; areas per curve."""
    input:
        units=units_store(),
        cris=f"{cris_dir()}/concept_importance.tsv",
        occlusion=occlusion_table(),
        checkpoint=CHECKPOINT_FILES,
        samples=LABELS,
        code=code("attribution"),
    output:
        curves=f"{curves_dir()}/attribution_curves.tsv",
        fidelity=report(
            f"{curves_dir()}/fidelity.tsv",
            caption="../report/fidelity.rst",
            category="Importance",
        ),
        checks=f"{curves_dir()}/fidelity_checks.tsv",
    log:
        log_path("importance", importance_name(curves_dir())),
    benchmark:
        benchmark_path("importance", importance_name(curves_dir()))
    conda:
        ENV
    threads: 2
    resources:
        **IMPORTANCE_RESOURCES,
        runtime=120,
    params:
        masking=json.dumps(MASKING_SETTINGS),
        settings=json.dumps(CURVES_SETTINGS),
        samples=samples_arg,
    shell:
        "videoconcepts curves --units {input.units:q} --settings {params.settings:q}"
        " --curves {output.curves:q} --fidelity {output.fidelity:q}"
        " --checks {output.checks:q} cris={input.cris:q} occlusion={input.occlusion:q}"
        " --masking {params.masking:q} --batch-size {resources.masks_per_batch}"
        " --device {resources.device} --threads {threads} {params.samples}"
        " > {log:q} 2>&1"


rule head_importance:
    """Every head ranked by CRIS on estimation videos; pruning curve on held-out videos."""
    input:
        decoded=[decode_store(video) for video in SAMPLES.index],
        checkpoint=CHECKPOINT_FILES,
        samples=LABELS,
        code=code("heads"),
    output:
        importance=f"{heads_dir()}/head_importance.tsv",
        pruning=report(
            f"{heads_dir()}/pruning_curve.tsv",
            caption="../report/pruning.rst",
            category="Heads",
        ),
    log:
        log_path("heads", Path(heads_dir()).name),
    benchmark:
        benchmark_path("heads", Path(heads_dir()).name)
    conda:
        ENV
    threads: 2
    resources:
        **IMPORTANCE_RESOURCES,
        runtime=240,
    params:
        masking=json.dumps(MASKING_SETTINGS),
        settings=json.dumps(HEADS_SETTINGS),
        samples=samples_arg,
    shell:
        "videoconcepts heads --settings {params.settings:q}"
        " --importance {output.importance:q} --pruning {output.pruning:q}"
        " --masking {params.masking:q} --batch-size {resources.masks_per_batch}"
        " --device {resources.device} --threads {threads} {params.samples}"
        " {input.decoded:q} > {log:q} 2>&1"
