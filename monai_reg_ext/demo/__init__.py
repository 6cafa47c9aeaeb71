"""Demo material: the generators and helpers of the bundles' demo-data makers (like ``monai.apps``).

Not part of the registration library: nothing in :mod:`monai_reg_ext` below this package imports it. Modules:

- :mod:`.manifest`: deterministic ``.nii.gz`` writing, sha256 manifests, ``--check`` regeneration, the makers' command
  line helpers;
- :mod:`.mni_template`: the real MNI ICBM152 2009a template (from a nilearn wheel) sampled on a demo grid;
- :mod:`.chest_ct`, :mod:`.chest_ct_demo`: real chest CTs, lung masks, vessel keypoints, a synthetic breathing motion
  and the lung makers' shared command line;
- :mod:`.ultrasound`: a deterministic ultrasound-like rendering of an echogenicity map.

The submodules are imported on demand (``from monai_reg_ext.demo.manifest import sha256_file``): some need optional
packages (``itk``, ``nilearn``) only the makers use.
"""
