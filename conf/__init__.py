# Package marker: lets the installed hpo_cli find its Hydra configs (hpo_cli.conf).
