rule units:
    """Every concept of every analysed layer and head as a maskable unit (token masks)."""
    input:
        concepts=lambda wc: concept_dirs(model_of("units")(wc)),
        code=code("units"),
    output:
        directory(f"{RESULTS}/units/{{units}}/units.zarr"),
    log:
        log_path("units", "{units}"),
    benchmark:
        benchmark_path("units", "{units}")
    priority: PRIORITY["units"]
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        stores=lambda wc: concept_stores(model_of("units")(wc)),
    shell:
        "videoconcepts units --out {output:q} {params.stores:q} > {log:q} 2>&1"
