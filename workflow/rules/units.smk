rule units:
    """Every concept of every analysed layer and head as a maskable unit (token masks)."""
    input:
        concepts=concept_stores(),
        code=code("units"),
    output:
        directory(units_store()),
    log:
        log_path("units", concepts_tag()),
    benchmark:
        benchmark_path("units", concepts_tag())
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "videoconcepts units --out {output:q} {input.concepts:q} > {log:q} 2>&1"
