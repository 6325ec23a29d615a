# Runtime options (masks per forward pass, device, precision) are resources: they change
# speed, not results beyond bf16 rounding, so changing them reruns nothing (except the CRIS shard layout, see
# cris_tag). Every model-running masking rule shares them.
MASKING_RESOURCES = dict(
    mem_mb=4000,
    gpu=job_gpus(config["masking"]["device"]),
    masks_per_batch=config["masking"]["masks_per_batch"],
    device=config["masking"]["device"],
    precision=config["masking"]["precision"],
)
RUNTIME_ARGS = (
    " --device {resources.device} --precision {resources.precision}"
    " --batch-size {resources.masks_per_batch} --threads {threads}"
)


rule targets:
    """Target class and unmasked score of every usable video, resolved once per model."""
    input:
        decoded=decode_stores(),
        checkpoint=CHECKPOINT_FILES,
        samples=LABELS,
        code=code("targets"),
    output:
        targets_table(),
    log:
        log_path("targets", targets_tag()),
    benchmark:
        benchmark_path("targets", targets_tag())
    conda:
        ENV
    threads: MASKING_THREADS
    resources:
        **MASKING_RESOURCES,
        runtime=30,
    params:
        settings=json.dumps(TARGET_SETTINGS),
        samples=samples_arg,
    shell:
        "videoconcepts targets --out {output:q} --settings {params.settings:q} {params.samples}"
        + RUNTIME_ARGS
        + " {input.decoded:q} > {log:q} 2>&1"
