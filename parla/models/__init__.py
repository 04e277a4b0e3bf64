"""Pure nn.Modules and their config dataclasses (motion model, refiner generator, discriminator). No I/O."""
