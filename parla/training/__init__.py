"""The server side: dataset preparation, GAN and motion training, distillation."""
