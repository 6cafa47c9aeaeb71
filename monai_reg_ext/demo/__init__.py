"""Demo material: the generators and helpers of the bundles' demo-data makers (like ``monai.apps``).

Not part of the registration library: nothing in :mod:`monai_reg_ext` below this package imports it. Modules:

- :mod:`.manifest`: deterministic ``.nii.gz`` writing, sha256 manifests, ``--check`` regeneration, the makers' command
  line helpers;
- :mod:`.mni_template`: the real MNI ICBM152 2009a template (from a nilearn wheel) sampled on a demo grid;
- :mod:`.chest_ct`, :mod:`.chest_ct_demo`: real chest CTs, lung masks, vessel keypoints, a synthetic breathing motion
  and the lung makers' shared command line;
- :mod:`.ultrasound`: a deterministic ultrasound-like rendering of an echogenicity map;
- :mod:`.deformation`: random smooth deformations and fields that warp one real scan into many "subjects";
- :mod:`.prostate`: a random analytic prostate region and its transrectal ultrasound rendering;
- :mod:`.learn2reg_lung`: the Learn2Reg 2020 lung CT training data in the lung bundles' layouts;
- :mod:`.classical`: the ``run`` entries of the classical (optimisation-based) bundles.

The submodules are imported on demand (``from monai_reg_ext.demo.manifest import sha256_file``): some need optional
packages (``itk``, ``nilearn``) only the makers use.
"""
