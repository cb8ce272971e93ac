# xmen: targets and the experiment rule. Included after the sets were added with xmen_add_set().


localrules:
    xmen_all,


rule xmen_all:
    default_target: True
    input:
        _xmen.targets_input(),


rule xmen_experiment:
    input:
        _xmen.requires_input(),
    output:
        "{exp}/xmen.done",
    threads: _xmen.threads
    resources:
        xmen_attempt=lambda wildcards, attempt: attempt,
        **_xmen.resources(),
    retries: _xmen.retries()
    run:
        xmen_run_experiment(wildcards, threads, resources, output)
