rule rosetta:
    """Concepts shared across the run's models: R-scores of concept tuples, the layers
    they link, and a permutation null (two or more models; rosetta.enabled)."""
    input:
        units=[units_store(m) for m in MODELS.values()],
        cris=[cris_tables(m)["importance"] for m in MODELS.values()],
        ground_truth=[f"{DEMO_DIR}/ground_truth.zarr"] if DEMO else [],
        code=code("rosetta"),
    output:
        **{
            name: (
                report(path, caption="../report/rosetta.rst", category="Rosetta")
                if name == "concepts"
                else path
            )
            for name, path in rosetta_tables().items()
        },
    log:
        log_path("rosetta", ROSETTA_TAG),
    benchmark:
        benchmark_path("rosetta", ROSETTA_TAG)
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=json.dumps(ROSETTA_SETTINGS),
        models=lambda wc, input: " ".join(
            f"--model {name} '{units}' '{cris}'"
            for name, units, cris in zip(MODELS, input.units, input.cris)
        ),
        truth=lambda wc, input, output: (
            f"--ground-truth '{input.ground_truth[0]}' --roles '{output.roles}'"
            if input.ground_truth
            else ""
        ),
    shell:
        "videoconcepts rosetta --settings {params.settings:q} {params.models}"
        " --concepts {output.concepts:q} --layers {output.layers:q} --summary {output.summary:q}"
        " {params.truth} > {log:q} 2>&1"
