rule sae:
    """One sparse autoencoder (TopK, Matryoshka groups, temporal contrastive term) on one
    layer's residual tokens; resumes from its checkpoint after a kill (sae.enabled)."""
    input:
        features=lambda wc: feature_stores(model_of("sae")(wc)),
        code=code("sae"),
    output:
        store=directory(f"{RESULTS}/sae/{{sae}}/sae.zarr"),
        history=f"{RESULTS}/sae/{{sae}}/history.tsv",
    log:
        log_path("sae", "{sae}"),
    benchmark:
        benchmark_path("sae", "{sae}")
    conda:
        ENV
    threads: masking_threads("sae")
    # a runtime option, as the device and precision are: changing it reruns nothing
    resources:
        **masking_resources("sae"),
        runtime=120,
        checkpoint_every=lambda wc: model_of("sae")(wc).sae_every,
    params:
        name=lambda wc: model_of("sae")(wc).name,
        settings=lambda wc: json.dumps(sae_settings(wc)),
    shell:
        "videoconcepts sae --name {params.name} --out {output.store:q}"
        " --history {output.history:q} --settings {params.settings:q}"
        " --checkpoint-every {resources.checkpoint_every}"
        " --device {resources.device} --precision {resources.precision}"
        " --threads {threads} {input.features:q} > {log:q} 2>&1"


rule sae_metrics:
    """Reconstruction, temporal coherence, probes, causal ablation and (demo) role IoU of
    a model's SAEs, against the raw features and the same SAEs untrained."""
    input:
        saes=lambda wc: [
            sae_store(model_of("sae_metrics")(wc), tag)
            for tag in model_of("sae_metrics")(wc).sae_tags
        ],
        features=lambda wc: feature_stores(model_of("sae_metrics")(wc)),
        decoded=lambda wc: decode_dirs(model_of("sae_metrics")(wc)),
        targets=lambda wc: targets_table(model_of("sae_metrics")(wc)),
        samples=LABELS,
        ground_truth=[f"{DEMO_DIR}/ground_truth.zarr"] if DEMO else [],
        checkpoint=lambda wc: model_of("sae_metrics")(wc).checkpoint_files,
        code=code("sae_metrics"),
    output:
        metrics=report(
            f"{RESULTS}/sae_metrics/{{sae_metrics}}/sae_metrics.tsv",
            caption="../report/sae.rst",
            category="Sparse autoencoders",
        ),
        features=f"{RESULTS}/sae_metrics/{{sae_metrics}}/sae_features.tsv",
        ablation=f"{RESULTS}/sae_metrics/{{sae_metrics}}/sae_ablation.tsv",
        gallery=directory(f"{RESULTS}/sae_metrics/{{sae_metrics}}/sae_gallery.zarr"),
    log:
        log_path("sae_metrics", "{sae_metrics}"),
    benchmark:
        benchmark_path("sae_metrics", "{sae_metrics}")
    conda:
        ENV
    threads: masking_threads("sae_metrics")
    resources:
        **masking_resources("sae_metrics"),
        runtime=120,
    params:
        name=lambda wc: model_of("sae_metrics")(wc).name,
        decoded=lambda wc: decode_stores(model_of("sae_metrics")(wc)),
        scoring=lambda wc: json.dumps(model_of("sae_metrics")(wc).targets),
        settings=lambda wc: json.dumps(model_of("sae_metrics")(wc).sae_metrics),
        samples=samples_arg,
        truth=lambda wc, input: (
            f"--ground-truth '{input.ground_truth[0]}'" if input.ground_truth else ""
        ),
    shell:
        "videoconcepts sae_metrics --name {params.name} --metrics {output.metrics:q}"
        " --features {output.features:q} --ablation {output.ablation:q}"
        " --gallery {output.gallery:q} --targets {input.targets:q} {params.samples}"
        " {params.truth} --scoring {params.scoring:q} --settings {params.settings:q}"
        + RUNTIME_ARGS
        + " --decoded {params.decoded:q} -- {input.saes:q} > {log:q} 2>&1"
