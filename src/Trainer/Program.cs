// The `dreambooth` entry point: the command table of Cli, run on the arguments.
return DreamBooth.Trainer.Cli.Root().Parse(args).Invoke();
