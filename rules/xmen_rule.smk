# xmen: targets and the experiment rule. Included after the sets were added with xmen_add_set().


localrules:
    xmen_all,


rule xmen_all:
    default_target: True
    input:
        XMEN_TARGETS,


rule xmen_experiment:
    input:
        _xmen_requires,
    output:
        "{exp}/xmen.done",
    threads: _xmen_threads
    resources:
        xmen_attempt=lambda wildcards, attempt: attempt,
        **{name: _xmen_resource(name) for name in xmen_resource_names()},
    retries: xmen_retries()
    run:
        xmen_run_experiment(wildcards, threads, resources, output)
